package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"dsmgw/asadapter"
	"dsmgw/asadapter/users"
	"dsmgw/mediagw"
	"dsmgw/otbridge"
	"dsmgw/store"
	"dsmgw/webclient"
)

// App holds the wired components of one gateway process.
type App struct {
	cfg      Config
	log      *slog.Logger
	rdb      redis.UniversalClient
	st       *store.Store
	feed     *store.Feed
	bridge   *otbridge.Bridge
	mgw      *mediagw.Gateway
	adapter  *asadapter.Adapter
	users    *users.Users
	listener net.Listener
	srv      *http.Server
}

// Build constructs every component of the configured roles. It binds the HTTP and SIP
// listeners, so a port conflict fails here, before anything runs.
func Build(ctx context.Context, cfg Config, log *slog.Logger) (*App, error) {
	if cfg.Instance == "" {
		h, _ := os.Hostname()
		cfg.Instance = h + "-" + strconv.Itoa(os.Getpid())
	}
	// Components add the instance to their own loggers.
	a := &App{cfg: cfg, log: log.With("instance", cfg.Instance)}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a.rdb = redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: cfg.RedisAddrs, Password: cfg.RedisPassword, IsClusterMode: cfg.RedisCluster,
		// Commits, reads and claims; the feed's blocking reads have a client of their own.
		PoolSize: cfg.RedisPool,
	})
	var err error
	a.st, err = store.New(store.Config{
		Shards: cfg.DSMShards, OplogLen: cfg.DSMOplogLen, FeedLen: cfg.DSMFeedLen, MaxFields: cfg.DSMMaxFields,
		Limits: store.Limits{MaxOps: cfg.DSMMaxOps, MaxFieldBytes: 128, MaxValueBytes: cfg.DSMMaxValue},
	}, a.rdb, log)
	if err != nil {
		return nil, err
	}
	a.feed = store.NewFeed(store.FeedConfig{}, a.st, log)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	a.listener, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}

	if cfg.Has(RoleBridge) {
		a.bridge, err = otbridge.New(otbridge.Config{
			Secret: []byte(cfg.DSMSecret), TokenTTL: cfg.DSMTokenTTL, MaxFrameBytes: cfg.DSMMaxFrame,
			MaxSubs: cfg.DSMMaxSubs, OpsPerSecond: cfg.DSMOpsPerSecond, SendQueue: cfg.DSMSendQueue,
			Instance: cfg.Instance,
		}, a.st, a.feed, reg, log)
		if err != nil {
			return nil, err
		}
		mux.Handle("/dsm", a.bridge.Handler())
		mux.Handle("GET /session", a.bridge.SessionHandler())
	}
	if cfg.Has(RoleWeb) {
		web, err := webclient.New(webclient.Config{}, log)
		if err != nil {
			return nil, err
		}
		mux.Handle("/", web)
		mux.Handle("GET "+webclient.SchemaPath, web)
	}

	// The AS adapter learns of media timeouts through onEvent: in process when the media
	// gateway runs here, over signed HTTP posts otherwise.
	var adapterRef atomic.Pointer[asadapter.Adapter]
	onEvent := func(ev mediagw.Event) {
		if ad := adapterRef.Load(); ad != nil {
			ad.HandleMediaEvent(ev)
		}
	}
	if cfg.Has(RoleMediaGW) {
		a.mgw, err = mediagw.New(mediagw.Config{
			BindAddr: cfg.MGWBindAddr, PublicAddr: cfg.MGWPublicAddr, PortMin: cfg.MGWPortMin, PortMax: cfg.MGWPortMax,
			PublicWSURL: cfg.MGWPublicWSURL, Secret: cfg.MGWSecret, TokenTTL: cfg.MGWTokenTTL,
			MediaTimeout: cfg.MGWMediaTimeout, SetupTimeout: cfg.MGWSetupTimeout, DisableLatching: cfg.MGWNoLatching,
			AllowedOrigins: cfg.MGWOrigins, OnEvent: onEvent,
		}, reg, log)
		if err != nil {
			return nil, err
		}
		mux.Handle("/v1/terminations", a.mgw.APIHandler())
		mux.Handle("/v1/terminations/", a.mgw.APIHandler())
		mux.Handle("/media/", a.mgw.MediaHandler())
	}
	if cfg.Has(RoleASAdapter) {
		mgwURL, eventURL := cfg.MGWURL, cfg.MGWEventURL
		if mgwURL == "" { // the media gateway runs in this process: talk to it on loopback
			mgwURL = "http://" + loopback(a.listener.Addr())
		}
		if !cfg.Has(RoleMediaGW) {
			mux.Handle("POST /v1/mgw-events", mediagw.EventHandler(cfg.MGWSecret, onEvent))
		} else {
			eventURL = "" // delivered in process through OnEvent
		}
		mc, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: mgwURL, Secret: cfg.MGWSecret})
		if err != nil {
			return nil, err
		}
		a.adapter, err = asadapter.New(asadapter.Config{
			Instance: cfg.Instance, Domain: cfg.SIPDomain, User: cfg.SIPUser, DisplayName: cfg.SIPDisplayName,
			ListenUDP: cfg.SIPListenUDP, ListenTCP: cfg.SIPListenTCP, ListenTLS: cfg.SIPListenTLS,
			TLSCert: cfg.SIPTLSCert, TLSKey: cfg.SIPTLSKey, TLSRootCAs: cfg.SIPTLSRootCAs, AdvertiseHost: cfg.SIPAdvertiseHost,
			OutboundProxy: cfg.SIPOutboundProxy, AuthUser: cfg.SIPAuthUser, AuthPassword: cfg.SIPAuthPassword,
			InviteTimeout: cfg.SIPInviteTimeout, DTMF: cfg.SIPDTMF, NoKeyspace: cfg.DSMNoKeyspace,
		}, a.st, a.feed, asadapter.NewMediaGatewayClient(mc, cfg.Instance, eventURL), reg, log)
		if err != nil {
			return nil, err
		}
		adapterRef.Store(a.adapter)
		a.users, err = users.New(users.Config{
			Instance: a.adapter.Instance(), Secret: cfg.UsersSecret, Registrar: cfg.UsersRegistrar,
			ConferenceDomain: cfg.UsersConfDom, Expires: cfg.UsersExpires, SubscribeExpires: cfg.UsersSubExp,
			SessionTTL: cfg.UsersSession,
		}, a.adapter, a.st, a.feed, reg, log)
		if err != nil {
			return nil, err
		}
		// NOTIFYs of conference subscriptions arrive on the adapter's listeners.
		a.adapter.OnRequest(sip.NOTIFY, a.users.HandleNotify)
		mux.Handle("/v1/users/", a.users.HTTPHandler())
	}

	a.srv = &http.Server{
		Handler: mux,
		// A slow client may not hold a connection open by trickling headers.
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	return a, nil
}

// loopback turns a listen address such as [::]:8080 into 127.0.0.1:8080.
func loopback(addr net.Addr) string {
	_, port, _ := net.SplitHostPort(addr.String())
	return net.JoinHostPort("127.0.0.1", port)
}

// drainer is implemented by components that can end their work gracefully.
type drainer interface {
	HangupAll(ctx context.Context) int
}

// Run runs every component until soft ends (drain, then stop) or hard ends (stop now).
func (a *App) Run(soft, hard context.Context) error {
	ctx, cancel := context.WithCancel(hard)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)

	if !a.cfg.DSMNoKeyspace {
		if err := a.st.EnableNotifications(gctx); err != nil {
			return err
		}
	}
	g.Go(func() error { return a.feed.Run(gctx) })
	if a.bridge != nil {
		g.Go(func() error { return a.bridge.Run(gctx) })
	}
	if a.mgw != nil {
		g.Go(func() error { return a.mgw.Run(gctx) })
	}
	if a.adapter != nil {
		g.Go(func() error { return a.adapter.Run(gctx) })
		g.Go(func() error { return a.users.Run(gctx) })
	}
	g.Go(func() error {
		err := a.srv.Serve(a.listener)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http: %w", err)
	})
	a.log.Info("gateway running", "http", a.listener.Addr().String(), "roles", a.cfg.Roles)

	// Wait for a signal (or a component failing), then shut down with a fresh context:
	// the signal context is already done.
	select {
	case <-soft.Done():
	case <-gctx.Done():
	}
	drainCtx, stop := context.WithTimeout(context.Background(), a.cfg.Drain)
	defer stop()
	if hard.Err() == nil && soft.Err() != nil {
		a.log.Info("SIGTERM: draining", "timeout", a.cfg.Drain)
		if d, ok := any(a.adapter).(drainer); ok && a.adapter != nil {
			n := d.HangupAll(drainCtx)
			a.log.Info("hung up calls", "calls", n)
		}
	}
	if err := a.srv.Shutdown(drainCtx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	cancel()
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil // every component ends with ctx's error once we cancel it
	}
	if a.mgw != nil {
		a.mgw.Close()
	}
	a.rdb.Close()
	a.log.Info("gateway stopped")
	return err
}

// readyz answers 200 when Redis answers and the feed readers (and the bridge) are running.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		http.Error(w, "redis: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	if !a.feed.Ready() {
		http.Error(w, "feed readers not running", http.StatusServiceUnavailable)
		return
	}
	if a.bridge != nil && !a.bridge.Ready() {
		http.Error(w, "bridge not running", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() net.Addr { return a.listener.Addr() }
