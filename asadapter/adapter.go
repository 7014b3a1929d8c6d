// Package asadapter is the signalling gateway's SIP side (the "AS adapter" of the design):
// it reacts to what browsers write in the DSM's player objects, places and answers SIP
// calls through the CSCF with emiago/sipgo, drives the media gateway's terminations and
// writes call progress, results and the media URL back to the DSM. Calls are claimed by
// exactly one gateway instance; their dialog state lives in Redis so another instance can
// end a call whose owner died.
package asadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"dsmgw/store"
)

// DTMF modes.
const (
	DTMFRFC4733 = "rfc4733" // telephone-event packets sent by the media gateway
	DTMFInfo    = "info"    // SIP INFO with application/dtmf-relay
)

// Config configures an Adapter. Zero values take the defaults filled in by fill.
type Config struct {
	// Instance names this gateway instance in claims, dialog records, DSM writes and
	// logs. Default: hostname-<random>.
	Instance string
	// Domain is the SIP domain of the adapter's identity and of bare user names written
	// by browsers as remote ("bob" → sip:bob@Domain). Default: the advertised host.
	Domain string
	// User is the user part of the adapter's own identity (From of outgoing calls).
	User string
	// DisplayName is the display name of the adapter's identity.
	DisplayName string
	// ListenUDP, ListenTCP and ListenTLS are the listen addresses ("" disables one;
	// port 0 picks a free port). Default: ListenUDP and ListenTCP "0.0.0.0:5060".
	ListenUDP, ListenTCP, ListenTLS string
	// TLSCert and TLSKey are PEM files for the TLS listener.
	TLSCert, TLSKey string
	// TLSRootCAs is a PEM file of the certificate authorities trusted when the adapter
	// connects over TLS (a CSCF with a private CA). Default: the system's pool.
	TLSRootCAs string
	// AdvertiseHost is the host written in Via, Contact and SDP origin (a public
	// address behind NAT). Default: the listen host, or 127.0.0.1 for 0.0.0.0.
	AdvertiseHost string
	// OutboundProxy is the CSCF's SIP URI ("sip:cscf.example.net:5060;transport=tcp").
	// All out-of-dialog requests are sent to it as a pre-loaded route; "" sends
	// directly to the request URI.
	OutboundProxy string
	// AuthUser and AuthPassword answer 401/407 digest challenges.
	AuthUser, AuthPassword string
	// InviteTimeout bounds how long an outgoing call may ring before it is cancelled
	// and failed with 408 (60 s: a minute of ringing is what phones allow).
	InviteTimeout time.Duration
	// ClaimTTL is the lease of a claim on a player: an instance that died loses its
	// calls to another instance after at most this long (10 s, renewed every third).
	ClaimTTL time.Duration
	// Rescan is how often the players index and the live calls are re-read, catching
	// anything a lost notification missed (5 s).
	Rescan time.Duration
	// Workers bound how many player objects are examined at once (64: enough to keep
	// Redis and the media gateway busy at a thousand setups per second).
	Workers int
	// QueueLen bounds the wake-up queue; a wake-up that does not fit is dropped and the
	// next rescan catches it (16384).
	QueueLen int
	// MaxCalls bounds the calls this instance handles at once (10,000); more players
	// are left for other instances.
	MaxCalls int
	// MinSessionExpires is the smallest RFC 4028 session interval accepted from a peer;
	// a smaller Session-Expires is raised to it (90 s, the RFC's Min-SE floor; whole
	// seconds, at least 1 s; tests lower it to see refreshes within seconds).
	MinSessionExpires time.Duration
	// DTMF selects how digits written by the browser are sent: DTMFRFC4733 (default)
	// or DTMFInfo.
	DTMF string
	// KeyPrefix prefixes the adapter's own Redis keys (claims, dialogs). Default
	// "asadapter:".
	KeyPrefix string
	// Keyspace enables the keyspace-notification wake-up besides the change feed
	// (default true; set NoKeyspace to turn it off).
	NoKeyspace bool
	// SIPLog enables sipgo's own debug logging of messages (noisy).
	SIPLog bool
}

func (c *Config) fill() error {
	if c.Instance == "" {
		h, _ := os.Hostname()
		if h == "" {
			h = "gw"
		}
		c.Instance = h + "-" + randHex(4)
	}
	if c.ListenUDP == "" && c.ListenTCP == "" && c.ListenTLS == "" {
		c.ListenUDP, c.ListenTCP = "0.0.0.0:5060", "0.0.0.0:5060"
	}
	if c.ListenTLS != "" && (c.TLSCert == "" || c.TLSKey == "") {
		return fmt.Errorf("%w: ListenTLS needs TLSCert and TLSKey", ErrConfig)
	}
	if c.AdvertiseHost == "" {
		for _, a := range []string{c.ListenUDP, c.ListenTCP, c.ListenTLS} {
			if h, _, err := net.SplitHostPort(a); err == nil && a != "" {
				c.AdvertiseHost = h
				break
			}
		}
		if ip := net.ParseIP(c.AdvertiseHost); c.AdvertiseHost == "" || (ip != nil && ip.IsUnspecified()) {
			c.AdvertiseHost = "127.0.0.1"
		}
	}
	if c.Domain == "" {
		c.Domain = c.AdvertiseHost
	}
	if c.User == "" {
		c.User = "dsmgw"
	}
	if c.InviteTimeout <= 0 {
		c.InviteTimeout = 60 * time.Second
	}
	if c.ClaimTTL <= 0 {
		c.ClaimTTL = 10 * time.Second
	}
	if c.Rescan <= 0 {
		c.Rescan = 5 * time.Second
	}
	if c.MinSessionExpires <= 0 {
		c.MinSessionExpires = defaultMinSE
	}
	if c.MinSessionExpires < time.Second {
		return fmt.Errorf("%w: MinSessionExpires %s below 1 s (Session-Expires counts whole seconds)",
			ErrConfig, c.MinSessionExpires)
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 16384
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = 10000
	}
	switch c.DTMF {
	case "":
		c.DTMF = DTMFRFC4733
	case DTMFRFC4733, DTMFInfo:
	default:
		return fmt.Errorf("%w: DTMF mode %q (want %q or %q)", ErrConfig, c.DTMF, DTMFRFC4733, DTMFInfo)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = "asadapter:"
	}
	if c.OutboundProxy != "" {
		var u sip.Uri
		if err := sip.ParseUri(c.OutboundProxy, &u); err != nil {
			return fmt.Errorf("%w: OutboundProxy %q: %v", ErrConfig, c.OutboundProxy, err)
		}
	}
	return nil
}

// Adapter is one gateway instance's SIP user agent and call controller.
type Adapter struct {
	cfg    Config
	st     *store.Store
	feed   *store.Feed
	mgw    MediaGateway
	log    *slog.Logger
	schema *store.Schema
	f      playerFields // field names, from the schema
	client string       // our writer id in the DSM
	keys   redisKeys
	met    *metrics

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client
	tp  *transports // our listeners and advertised addresses

	queue   chan string // player addresses to examine (feed and keyspace wake-ups)
	slow    chan string // player addresses to examine when queue is empty (rescans)
	pmu     sync.Mutex  // guards pending
	pending map[string]struct{}
	wake    *wakeFilter

	cmu   sync.Mutex       // guards calls and byID
	calls map[string]*call // player address → live call owned here
	byID  map[string]*call // Call-ID → live call owned here

	ids *identities // browser client → registered SIP user, for the From of calls

	runCtx    atomic.Pointer[context.Context] // Run's context, for SIP handlers
	closeOnce sync.Once

	// Drain (HangupAll): drainC is closed once to tell every call to hang up; draining is
	// set under cmu so addCall and HangupAll agree on which calls the drain covers;
	// drainCtx bounds the cleanups of a drain.
	drainC    chan struct{}
	drainOnce sync.Once
	draining  atomic.Bool
	drainCtx  atomic.Pointer[context.Context]
}

// New builds an adapter, binds its SIP listeners (so Addr works before Run) and registers
// its SIP request handlers. Nothing is read from Redis until Run.
func New(cfg Config, st *store.Store, feed *store.Feed, mgw MediaGateway, reg prometheus.Registerer, log *slog.Logger) (*Adapter, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	if st == nil || feed == nil || mgw == nil {
		return nil, fmt.Errorf("%w: store, feed and media gateway are required", ErrConfig)
	}
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &Adapter{
		cfg:     cfg,
		st:      st,
		feed:    feed,
		mgw:     mgw,
		log:     log.With("component", "asadapter", "instance", cfg.Instance),
		schema:  st.Schema(),
		client:  "asadapter/" + cfg.Instance,
		keys:    redisKeys{prefix: cfg.KeyPrefix},
		queue:   make(chan string, cfg.QueueLen),
		slow:    make(chan string, cfg.QueueLen),
		pending: make(map[string]struct{}),
		calls:   make(map[string]*call),
		byID:    make(map[string]*call),
		drainC:  make(chan struct{}),
	}
	a.f = fieldsOf(a.schema)
	a.wake = newWakeFilter()
	a.ids = newIdentities()
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	a.met = met
	if err := a.startUA(); err != nil {
		return nil, err
	}
	return a, nil
}

// Instance returns this instance's id.
func (a *Adapter) Instance() string { return a.cfg.Instance }

// Config returns the filled-in configuration.
func (a *Adapter) Config() Config { return a.cfg }

// SIP returns the user agent and the client the adapter sends with, for the registration
// and subscription half (REGISTER, SUBSCRIBE). Requests built for them should go through
// PrepareRequest so they carry our Via, Contact and the outbound proxy route.
func (a *Adapter) SIP() (*sipgo.UserAgent, *sipgo.Client) { return a.ua, a.cli }

// OnRequest registers a handler for a SIP method the call controller does not handle
// itself (NOTIFY, MESSAGE ...). Call it before Run.
func (a *Adapter) OnRequest(method sip.RequestMethod, h sipgo.RequestHandler) {
	a.srv.OnRequest(method, h)
}

// Run serves SIP and drives calls until ctx ends. When ctx ends, listeners are closed and
// calls are abandoned without BYE (their claims expire and another instance ends them):
// this is also what a crash looks like, which tests rely on. For a graceful stop, call
// HangupAll first and end ctx after it returns.
func (a *Adapter) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	a.runCtx.Store(&ctx)
	a.tp.serve(g, a.srv)
	unsub := a.feed.Subscribe(a.onChange)
	defer unsub()
	g.Go(func() error { a.loadIdentities(ctx); return nil }) // after Subscribe: no change falls between
	for i := 0; i < a.cfg.Workers; i++ {
		g.Go(func() error { return a.worker(ctx) })
	}
	g.Go(func() error { return a.rescanLoop(ctx) })
	if !a.cfg.NoKeyspace {
		g.Go(func() error { return a.keyspaceLoop(ctx) })
	}
	g.Go(func() error {
		<-ctx.Done()
		a.Close()
		return nil
	})
	a.log.Info("AS adapter running", "udp", a.Addr("udp"), "tcp", a.Addr("tcp"), "tls", a.Addr("tls"),
		"proxy", a.cfg.OutboundProxy)
	err := g.Wait()
	a.abandonAll()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Close closes the listeners and the user agent. It is safe to call twice.
func (a *Adapter) Close() error {
	a.closeOnce.Do(func() {
		a.tp.close()
		a.ua.Close()
	})
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
