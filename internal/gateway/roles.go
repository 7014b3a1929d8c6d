package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter"
	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/ptt"
	"dsmgw/asadapter/users"
	"dsmgw/mediagw"
	"dsmgw/otbridge"
	"dsmgw/store"
	"dsmgw/webclient"
)

// buildCommon wires what every role shares: the metrics registry, the HTTP listener and
// its health endpoints, the Redis client, the store and the change feed.
func (a *App) buildCommon(o options) error {
	cfg := a.cfg
	a.reg = prometheus.NewRegistry()
	a.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	a.mux.HandleFunc("GET /readyz", a.readyz)
	metrics := promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg})
	if cfg.MetricsAddr == "" {
		a.mux.Handle("GET /metrics", metrics)
	} else {
		l, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen %s (METRICS_ADDR): %w", cfg.MetricsAddr, err)
		}
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metrics)
		a.metricsListener = l
		a.metricsSrv = &http.Server{Handler: mm, ReadHeaderTimeout: 10 * time.Second}
	}

	a.listener = o.listener
	if a.listener == nil {
		l, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
		}
		a.listener = l
	}

	a.rdb = redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword, IsClusterMode: cfg.RedisCluster,
		// Commits, reads and claims; the feed's blocking reads have a client of their own.
		PoolSize: cfg.RedisPool,
		Dialer:   redisDialer,
	})
	scfg := store.Config{
		Shards: cfg.DSMShards, OplogLen: cfg.DSMOplogLen, FeedLen: cfg.DSMFeedLen, MaxFields: cfg.DSMMaxFields,
		Limits: store.Limits{MaxOps: cfg.DSMMaxOps, MaxValueBytes: cfg.DSMMaxValue},
	}
	apply(o.store, &scfg)
	var err error
	if a.st, err = store.New(scfg, a.rdb, a.ilog); err != nil {
		return err
	}
	a.feed = store.NewFeed(store.FeedConfig{NoKeyspace: cfg.DSMNoKeyspace}, a.st, a.ilog)
	return a.reg.Register(a.feed.Collector())
}

// buildBridge wires the DSM WebSocket bridge (/dsm, /session, POST /v1/sessions) and the
// janitor that removes what pages gone for good left behind: the bridge records which
// client keys are present, so the janitor runs where it does.
func (a *App) buildBridge(o options) error {
	cfg := a.cfg
	jcfg := store.JanitorConfig{Grace: cfg.DSMGrace, FeedMaxAge: cfg.DSMFeedMaxAge}
	apply(o.janitor, &jcfg)
	var err error
	if a.janitor, err = store.NewJanitor(jcfg, a.st, cfg.Instance, a.ilog); err != nil {
		return err
	}
	bcfg := otbridge.Config{
		Secret: []byte(cfg.DSMSecret), TokenTTL: cfg.DSMTokenTTL, MaxFrameBytes: cfg.DSMMaxFrame,
		MaxSubs: cfg.DSMMaxSubs, OpsPerSecond: cfg.DSMOpsPerSecond, SendQueue: cfg.DSMSendQueue,
		Instance: cfg.Instance, DemoSessions: cfg.DSMDemoSessions, MaxObjects: cfg.DSMMaxObjects,
		// A quarter of the grace period: a connected key is refreshed three times before
		// it could be taken for gone.
		PresenceInterval: a.janitor.Config().Grace / 4,
	}
	apply(o.bridge, &bcfg)
	if a.bridge, err = otbridge.New(bcfg, a.st, a.feed, a.reg, a.clog); err != nil {
		return err
	}
	a.mux.Handle("/dsm", a.bridge.Handler())
	a.mux.Handle("GET /session", a.bridge.SessionHandler())
	a.mux.Handle("POST /v1/sessions", a.bridge.SessionsAPIHandler())
	return nil
}

// buildWeb wires the browser files and the schema.
func (a *App) buildWeb() error {
	page := webclient.PageConfig{SIPDomain: a.cfg.SIPDomain}
	if a.cfg.DemoSignIn() {
		// Twice per session lifetime: one lost refresh does not end the registration.
		page.SignInRefresh = int64(a.cfg.UsersSession / 2 / time.Second)
	}
	web, err := webclient.New(webclient.Config{Page: page}, a.ilog)
	if err != nil {
		return err
	}
	a.mux.Handle("/", web)
	a.mux.Handle("GET "+webclient.SchemaPath, web)
	a.mux.Handle("GET "+webclient.PageConfigPath, web)
	return nil
}

// eventRelay hands media gateway events to the AS adapter, which is built after the
// media gateway that emits them (and may not run in this process at all).
type eventRelay struct {
	adapter atomic.Pointer[asadapter.Adapter]
}

func (r *eventRelay) deliver(ev mediagw.Event) {
	if ad := r.adapter.Load(); ad != nil {
		ad.HandleMediaEvent(ev)
	}
}

// buildMediaGW wires the media gateway: its API and the browsers' media WebSockets.
func (a *App) buildMediaGW(ev *eventRelay) error {
	cfg := a.cfg
	var err error
	a.mgw, err = mediagw.New(mediagw.Config{
		BindAddr: cfg.MGWBindAddr, PublicAddr: cfg.MGWPublicAddr, PortMin: cfg.MGWPortMin, PortMax: cfg.MGWPortMax,
		PublicWSURL: cfg.MGWPublicWSURL, Secret: cfg.MGWSecret, TokenTTL: cfg.MGWTokenTTL,
		MediaTimeout: cfg.MGWMediaTimeout, SetupTimeout: cfg.MGWSetupTimeout, DisableLatching: cfg.MGWNoLatching,
		LatchWindow:    cfg.MGWLatchWindow,
		AllowedOrigins: cfg.MGWOrigins, OnEvent: ev.deliver,
	}, a.reg, a.ilog)
	if err != nil {
		return err
	}
	a.mux.Handle("/v1/terminations", a.mgw.APIHandler())
	a.mux.Handle("/v1/terminations/", a.mgw.APIHandler())
	a.mux.Handle("/media/", a.mgw.MediaHandler())
	return nil
}

// mediaClientIdle is how many idle connections the AS adapter keeps to the media gateway
// API: every call set-up and change is a request to that one host, from up to the
// adapter's 64 workers at once plus in-dialog requests; http.DefaultTransport keeps 2, so
// under load most requests would open a new TCP connection and leave one in TIME_WAIT.
const mediaClientIdle = 256

// mediaClientTimeout bounds one media gateway API request: each is a quick local
// operation, and a hung media gateway must not hang call set-up.
const mediaClientTimeout = 10 * time.Second

// buildASAdapter wires the AS adapter and its users half (registration API, REGISTER,
// conference subscriptions), which share the SIP listeners.
func (a *App) buildASAdapter(o options, ev *eventRelay) error {
	cfg := a.cfg
	mgwURL, eventURL := cfg.MGWURL, cfg.MGWEventURL
	if cfg.Has(RoleMediaGW) {
		eventURL = "" // delivered in process through OnEvent
	} else {
		a.mux.Handle("POST /v1/mgw-events", mediagw.EventHandler(cfg.MGWSecret, ev.deliver))
	}
	var mgw asadapter.MediaGateway
	if mgwURL == "" {
		// The media gateway runs in this process (the config asks for MGW_URL
		// otherwise): called directly, not over HTTP to ourselves, which cost two
		// requests per call set-up.
		mgw = asadapter.NewMediaGatewayClient(a.mgw, cfg.Instance, "")
	} else {
		var err error
		if mgw, err = a.mediaGateways(mgwURL, eventURL); err != nil {
			return err
		}
	}
	peers, err := edge.ParseCredentials(cfg.SIPPeerCredentials)
	if err != nil {
		return fmt.Errorf("SIP_PEER_CREDENTIALS: %w", err)
	}
	acfg := asadapter.Config{
		Instance: cfg.Instance, Domain: cfg.SIPDomain, User: cfg.SIPUser, DisplayName: cfg.SIPDisplayName,
		ListenUDP: cfg.SIPListenUDP, ListenTCP: cfg.SIPListenTCP, ListenTLS: cfg.SIPListenTLS,
		TLSCert: cfg.SIPTLSCert, TLSKey: cfg.SIPTLSKey, TLSRootCAs: cfg.SIPTLSRootCAs, AdvertiseHost: cfg.SIPAdvertiseHost,
		OutboundProxy: cfg.SIPOutboundProxy, AuthUser: cfg.SIPAuthUser, AuthPassword: cfg.SIPAuthPassword,
		InviteTimeout: cfg.SIPInviteTimeout, ClaimTTL: cfg.SIPCallLease, DTMF: cfg.SIPDTMF, NoKeyspace: cfg.DSMNoKeyspace,
		TLSClientCAs: cfg.SIPTLSClientCAs,
		Edge: edge.Config{
			Trusted: cfg.SIPTrustedPeers, TrustedNames: cfg.SIPTrustedNames, Peers: peers,
			SourceRate: cfg.SIPSourceRate, SourceDropRate: cfg.SIPSourceDropRate,
			SourceTransactions: cfg.SIPSourceTransactions, SourceDialogs: cfg.SIPSourceDialogs,
			SourceConnections: cfg.SIPSourceConnections,
		},
		ConferenceDomain: cfg.UsersConfDom, TalkGroupDomain: cfg.SIPTalkGroupDomain,
		Floor: ptt.Config{BindAddr: cfg.SIPFloorBindAddr, PortMin: cfg.SIPFloorPortMin, PortMax: cfg.SIPFloorPortMax},
	}
	apply(o.adapter, &acfg)
	a.adapter, err = asadapter.New(acfg, a.st, a.feed, mgw, a.reg, a.clog)
	if err != nil {
		return err
	}
	ev.adapter.Store(a.adapter)
	ucfg := users.Config{
		Instance: cfg.Instance, Secret: cfg.UsersSecret, Registrar: cfg.UsersRegistrar,
		ConferenceDomain: cfg.UsersConfDom, Expires: cfg.UsersExpires, SubscribeExpires: cfg.UsersSubExp,
		SessionTTL: cfg.UsersSession,
	}
	switch {
	case cfg.DemoSignIn():
		ucfg.DemoDomain, ucfg.DemoPassword = cfg.SIPDomain, cfg.UsersDemoPassword
	case cfg.DSMDemoSessions:
		a.ilog.Warn("demo sessions without SIP_DOMAIN: a page's sign-in does not register its user with the network")
	}
	a.users, err = users.New(ucfg, a.adapter, a.st, a.feed, a.reg, a.clog)
	if err != nil {
		return err
	}
	// NOTIFYs of conference subscriptions arrive on the adapter's listeners; a registered
	// user's calls carry the user's binding and credentials, which the users side holds.
	a.adapter.OnRequest(sip.NOTIFY, a.users.HandleNotify)
	// Incoming calls and calling identities also find a user's browser there: client keys
	// stay out of the DSM.
	a.adapter.UseUsers(a.users)
	a.mux.Handle("/v1/users/", a.users.HTTPHandler())
	return nil
}

// mediaGateways is the AS adapter's media gateway: the one at urls, or, when urls lists
// several (comma-separated: the mediagw role running apart on several instances), a pool
// that places new terminations on them in turn and moves the calls of one that is lost to
// another (asadapter.MediaGatewayPool, run with the app).
func (a *App) mediaGateways(urls, eventURL string) (asadapter.MediaGateway, error) {
	cfg := a.cfg
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = mediaClientIdle
	var clients []*mediagw.Client
	var names []string
	for u := range strings.SplitSeq(urls, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		mc, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: u, Secret: cfg.MGWSecret,
			HTTPClient: &http.Client{Timeout: mediaClientTimeout, Transport: tr}})
		if err != nil {
			return nil, fmt.Errorf("MGW_URL %s: %w", u, err)
		}
		clients, names = append(clients, mc), append(names, u)
	}
	if len(clients) == 1 {
		return asadapter.NewMediaGatewayClient(clients[0], cfg.Instance, eventURL), nil
	}
	pool, err := asadapter.NewMediaGatewayPool(asadapter.PoolConfig{Owner: cfg.Instance, EventURL: eventURL}, clients, names, a.clog)
	if err != nil {
		return nil, fmt.Errorf("MGW_URL: %w", err)
	}
	a.mgwPool = pool
	return pool, nil
}

// Redis connections are dialled as go-redis does by default (5 s to connect, keep-alive),
// and closed with SO_LINGER 0. go-redis closes a connection whose command timed out (3 s);
// with the default linger the kernel would still retransmit the command and deliver it
// when a partition heals, long after the call that sent it was fenced and its claim
// passed to another instance (asadapter/lease.go). A reset discards it.
const (
	redisDialTimeout = 5 * time.Second
	redisKeepAlive   = 5 * time.Minute
)

func redisDialer(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: redisDialTimeout, KeepAlive: redisKeepAlive}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c, nil
}
