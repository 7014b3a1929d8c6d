package asadapter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/ptt"
	"dsmgw/asadapter/sipport"
	"dsmgw/store"
)

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
	// floorPorts are the floor channels' ports of push-to-talk calls (call_ptt.go).
	floorPorts *ptt.Ports

	ua  *sipgo.UserAgent
	srv *sipgo.Server
	cli *sipgo.Client
	tp  *transports // our listeners and advertised addresses

	queue chan string // player addresses to examine (feed and keyspace wake-ups)
	slow  chan string // player addresses to examine when queue is empty (rescans)
	pmu   sync.Mutex  // guards pending
	// pending holds the players queued for examine, each with the fields its latest
	// wake-up's change determines (playerView; nil: unknown, examine reads the player).
	pending map[string]map[string]string
	wake    *wakeFilter
	// leases are the claims of other instances' calls, watched for their expiry
	// (leasewatch.go).
	leases *leaseWatch
	// renewers are the claims of our own calls, renewed together (lease_renew.go).
	renewers *renewers
	// takeoverQ spreads the takeovers of a burst (takeover_sched.go).
	takeoverQ *takeoverGate

	cmu   sync.Mutex         // guards calls and byID
	calls map[string]*call   // player address → live call owned here
	byID  map[string][]*call // Call-ID → live calls owned here (see callsByID)

	ids *identities // browser client → registered SIP user, for the From of calls
	// users is the users side (bindings, credentials of registered users); nil without
	// one. Set by UseUsers before Run, read-only after.
	users sipport.Users
	// edge decides on every message the listeners read (edge_hook.go); conns are the
	// stream connections it knows.
	edge  *edge.Edge
	conns *edgeConns

	// own owns every goroutine the adapter starts and every SIP handler while it runs;
	// Run waits for them before it returns.
	own owner
	// runCtx is Run's context, for SIP handlers and cleanups; before Run it is idle, a
	// context that is already cancelled (no handler runs before Run serves).
	runCtx    atomic.Pointer[context.Context]
	idle      context.Context
	closeOnce sync.Once

	// Drain (HangupAll): drainC is closed once to tell every call to hang up; draining is
	// set under cmu so addCall and HangupAll agree on which calls the drain covers;
	// drainCtx bounds the cleanups of a drain.
	drainC    chan struct{}
	drainOnce sync.Once
	draining  atomic.Bool
	drainCtx  atomic.Pointer[context.Context]
	// quiescing is set by StopTaking, the first step of a graceful shutdown: no new
	// outgoing call, no takeover; calls already here go on.
	quiescing atomic.Bool

	// beforeAnswer, when set, runs between an incoming call's confirmed save and its 200
	// (call_in.go): the tests lose an instance in that window. Atomic: set after Run
	// started, read by call goroutines.
	beforeAnswer atomic.Pointer[func(context.Context)]
}

// New builds an adapter, binds its SIP listeners (so Addr works before Run) and registers
// its SIP request handlers. Nothing is read from Redis until Run. A nil reg keeps the
// metrics private; a nil log discards.
func New(cfg Config, st *store.Store, feed *store.Feed, mgw MediaGateway, reg prometheus.Registerer, log *slog.Logger) (*Adapter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if st == nil || feed == nil || mgw == nil {
		return nil, fmt.Errorf("%w: store, feed and media gateway are required", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	idle, cancel := context.WithCancel(context.Background())
	cancel()
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
		pending: make(map[string]map[string]string),
		calls:   make(map[string]*call),
		byID:    make(map[string][]*call),
		idle:    idle,
		drainC:  make(chan struct{}),
	}
	a.f = fieldsOf(a.schema)
	if a.floorPorts, err = ptt.NewPorts(cfg.Floor); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	a.wake = newWakeFilter()
	a.leases = newLeaseWatch()
	a.renewers = newRenewers()
	a.takeoverQ = newTakeoverGate()
	a.ids = newIdentities()
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	a.met = met
	if err := a.newEdge(reg, log); err != nil {
		return nil, err
	}
	if m, ok := mgw.(mediaMover); ok {
		m.onLoss(a.mediaLost)
	}
	if err := a.startUA(log); err != nil {
		return nil, err
	}
	return a, nil
}

// Instance returns this instance's id.
func (a *Adapter) Instance() string { return a.cfg.Instance }

// Config returns the filled-in configuration.
func (a *Adapter) Config() Config { return a.cfg }

// SIP returns the user agent and the client the adapter sends with, for the users side
// (REGISTER, SUBSCRIBE). Requests built for them should go through PrepareRequest so they
// carry our Via, Contact and the outbound proxy route.
func (a *Adapter) SIP() (*sipgo.UserAgent, *sipgo.Client) { return a.ua, a.cli }

// OnRequest registers a handler for a SIP method the call controller does not handle
// itself (NOTIFY, MESSAGE ...). Call it before Run. Run waits for the handler like for its
// own: a request that arrives as Run ends is answered 503 instead.
func (a *Adapter) OnRequest(method sip.RequestMethod, h sipgo.RequestHandler) {
	a.srv.OnRequest(method, a.owned(h))
}

// Run serves SIP and drives calls until ctx ends, and returns once every goroutine it
// started and every SIP handler has ended. When ctx ends, listeners are closed and calls
// are abandoned without BYE (their claims expire and another instance ends them): this is
// also what a crash looks like, which tests rely on. For a graceful stop, call HangupAll
// first and end ctx after it returns.
func (a *Adapter) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	a.runCtx.Store(&ctx)
	a.edge.Refresh(ctx) // the trust domain's names, before the first request is read
	g.Go(func() error { return a.edgeLoop(ctx) })
	a.tp.serve(g, a.srv)
	unsub := a.feed.Subscribe(a.onChange)
	defer unsub()
	g.Go(func() error { a.loadIdentities(ctx); return nil }) // after Subscribe: no change falls between
	for i := 0; i < a.cfg.Workers; i++ {
		g.Go(func() error { return a.worker(ctx) })
	}
	g.Go(func() error { return a.rescanLoop(ctx) })
	g.Go(func() error { a.watchDialogs(ctx); return a.watchLeases(ctx) })
	g.Go(func() error { return a.renewLeases(ctx) })
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
	// Calls see ctx's end and return without a word, as in a crash, leaving their claims to
	// expire and their dialogs to a takeover; handlers answer or give up.
	a.own.stopAndWait()
	// A call's last goroutine may have sent after Close (an ACK, the end of an old INVITE
	// transaction): the transport opened a new socket for it, with a reader of its own
	// that only closing the user agent again ends. Nothing sends any more now.
	_ = a.ua.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// runContext returns Run's context (the cancelled idle context before Run).
func (a *Adapter) runContext() context.Context {
	if p := a.runCtx.Load(); p != nil {
		return *p
	}
	return a.idle
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
