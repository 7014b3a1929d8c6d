// Package otbridge is the WebSocket side of the DSM: it authenticates browsers with signed
// tokens, serves subscriptions (snapshot or catch-up) and ops (committed through store,
// acknowledged only after Redis committed them), and fans the change feed out to local
// subscriptions in revision order without gaps. docs/dsm-protocol.md is its contract.
package otbridge

import (
	"bytes"
	"context"
	"hash/crc32"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"dsmgw/store"
)

// drainTimeout bounds how long Run waits for connections to finish after it closed them
// (they only need to notice their socket is closed).
const drainTimeout = 5 * time.Second

// Bridge serves the DSM WebSocket protocol for one gateway instance.
type Bridge struct {
	cfg      Config
	st       *store.Store
	feed     *store.Feed
	log      *slog.Logger
	m        *metrics
	hub      *hub
	refresh  *refresher
	presence *presence
	upgrader websocket.Upgrader
	limits   Limits
	shards   int
	// readBufs recycles the buffers frames are read into, so an idle connection holds none.
	readBufs sync.Pool
	// writeBufs recycles the buffers the writers frame batches into (*[]byte).
	writeBufs sync.Pool

	ctx    context.Context // cancelled when Run returns: bounds every store call
	cancel context.CancelFunc

	running  atomic.Bool // Run subscribed to the feed: connections may be accepted
	stopping atomic.Bool
	feedDown atomic.Bool // the feed failed for FeedDownClose: connections refused

	mu    sync.Mutex // guards conns
	conns map[*conn]struct{}
	wg    sync.WaitGroup // connection handlers
}

// New returns a Bridge committing through st and fanning out feed. reg receives the
// bridge's metrics (nil: a private registry, so they are not exported); a nil log
// discards.
func New(cfg Config, st *store.Store, feed *store.Feed, reg prometheus.Registerer, log *slog.Logger) (*Bridge, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	sc := st.Config()
	b := &Bridge{
		cfg:   cfg,
		st:    st,
		feed:  feed,
		log:   log.With("component", "otbridge", "instance", cfg.Instance),
		m:     m,
		hub:   newHub(feed),
		conns: make(map[*conn]struct{}),
		limits: Limits{
			MaxFrameBytes: cfg.MaxFrameBytes,
			MaxOps:        sc.Limits.MaxOps,
			MaxFieldBytes: sc.Limits.MaxFieldBytes,
			MaxValueBytes: sc.Limits.MaxValueBytes,
			MaxFields:     sc.MaxFields,
			MaxSubs:       cfg.MaxSubs,
			MaxObjects:    cfg.MaxObjects,
			OpsPerSecond:  cfg.OpsPerSecond,
		},
		shards: sc.Shards,
	}
	b.readBufs.New = func() any { return new(bytes.Buffer) }
	b.writeBufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	b.refresh = newRefresher()
	b.presence = newPresence(b)
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.upgrader = websocket.Upgrader{
		// Small read buffers and pooled write buffers keep an idle connection well under
		// 20 KiB: a frame larger than the read buffer is simply read in several pieces, and
		// a write buffer is only held while a message is being written.
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     cfg.CheckOrigin,
	}
	return b, nil
}

// Run subscribes to the feed, runs the catch-up workers and accepts connections until ctx
// ends; then it closes every connection with 1001 and waits for them. It returns nil after
// a clean shutdown.
func (b *Bridge) Run(ctx context.Context) error {
	if b.stopping.Load() {
		return ErrClosed
	}
	unsub := b.feed.Subscribe(b.onChange)
	var workers sync.WaitGroup
	for i := 0; i < b.cfg.RefreshWorkers; i++ {
		workers.Add(1)
		go func() { defer workers.Done(); b.refresh.work(b.ctx, b) }()
	}
	pctx, stopPresence := context.WithCancel(b.ctx)
	workers.Add(1)
	go func() { defer workers.Done(); b.presence.run(pctx) }()
	b.running.Store(true)
	b.log.Info("DSM bridge running")
	workers.Add(1)
	go func() { defer workers.Done(); b.watchFeed(ctx) }()
	<-ctx.Done()

	b.stopping.Store(true)
	b.running.Store(false)
	b.mu.Lock()
	n := len(b.conns)
	for c := range b.conns {
		c.close(CloseGoingAway, "gateway shutting down")
	}
	b.mu.Unlock()
	b.log.Info("DSM bridge draining connections", "connections", n)
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTimeout):
		b.log.Warn("connections still open after drain timeout")
	}
	unsub()
	stopPresence()
	b.cancel()
	workers.Wait()
	return nil
}

// feedPoll is how often the bridge looks at the feed's health: a fraction of
// FeedDownClose's seconds, for nothing (an atomic load per shard).
const feedPoll = 250 * time.Millisecond

// watchFeed closes every connection once the change feed has failed to read for
// FeedDownClose, or at once when a read of it went unanswered well past its block (a
// partition or a frozen Redis: a restarting Redis refuses connections and is the
// FeedDownClose case), and refuses new ones until it reads again: clients reconnect,
// through the load balancer, to an instance whose feed works, and resume there.
func (b *Bridge) watchFeed(ctx context.Context) {
	t := time.NewTicker(feedPoll)
	defer t.Stop()
	var downSince time.Time
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A process that was not scheduled for a while cannot tell a read Redis left
		// unanswered from one whose answer it had no time to take: it judges stalls only
		// when its own ticks come on time.
		onTime := time.Since(last) < 2*feedPoll
		last = time.Now()
		stalled := onTime && b.feed.Stalled()
		switch ready := b.feed.Ready() && !stalled; {
		case ready && b.feedDown.Load():
			b.feedDown.Store(false)
			b.log.Info("change feed reads again; accepting connections", "down_for", time.Since(downSince).Round(time.Millisecond))
			downSince = time.Time{}
		case ready:
			downSince = time.Time{}
		case downSince.IsZero() && !stalled:
			downSince = time.Now()
		case stalled || time.Since(downSince) >= b.cfg.FeedDownClose:
			if downSince.IsZero() {
				downSince = time.Now()
			}
			// Every look while down closes what is open: serveWS accepts as soon as the
			// feed reads again, and a connection taken in a moment of reading between two
			// looks must not stay on a feed that is down again.
			first := !b.feedDown.Swap(true)
			b.mu.Lock()
			n := len(b.conns)
			for c := range b.conns {
				c.close(CloseUnavailable, "change feed unavailable on this instance")
			}
			b.mu.Unlock()
			if first || n > 0 {
				b.log.Warn("change feed down; closed every connection and refusing new ones until it reads again",
					"connections", n, "stalled", stalled, "down_for", time.Since(downSince).Round(time.Millisecond))
			}
		}
	}
}

// Ready reports whether the bridge accepts connections and every feed reader is reading
// (for /readyz).
func (b *Bridge) Ready() bool {
	return b.running.Load() && !b.stopping.Load() && b.feedReads()
}

// feedReads reports whether every feed reader's last read succeeded and none waits for
// an answer long overdue.
func (b *Bridge) feedReads() bool { return b.feed.Ready() && !b.feed.Stalled() }

// Handler returns the WebSocket endpoint: a GET on the path it is mounted on upgrades to
// the DSM protocol. Until Run has started (and after it ended) it answers 503.
func (b *Bridge) Handler() http.Handler { return http.HandlerFunc(b.serveWS) }

func (b *Bridge) serveWS(w http.ResponseWriter, r *http.Request) {
	if !b.running.Load() || b.stopping.Load() {
		http.Error(w, "DSM bridge not running", http.StatusServiceUnavailable)
		return
	}
	// Refused while the feed that was down still is: once it reads again the bridge
	// accepts at once, as Ready (and so /readyz) says, not at watchFeed's next look.
	if b.feedDown.Load() && !b.feedReads() {
		http.Error(w, "DSM change feed unavailable on this instance", http.StatusServiceUnavailable)
		return
	}
	ws, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader already answered with an HTTP error
	}
	c := newConn(b, ws)
	b.mu.Lock()
	if b.stopping.Load() {
		b.mu.Unlock()
		ws.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	b.m.connections.Inc()
	// Serve on a fresh goroutine and let the HTTP handler return: the handler's stack has
	// grown while net/http parsed the request, and an idle connection should not keep it.
	go func() {
		defer func() {
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			b.m.connections.Dec()
			b.wg.Done()
		}()
		c.serve()
	}()
}

// shardOf mirrors store's object → feed shard mapping (crc32 of the address modulo the
// shard count), needed to find the subscriptions hit by a lost feed shard.
func shardOf(obj string, shards int) int {
	return int(crc32.ChecksumIEEE([]byte(obj)) % uint32(shards))
}

// change is one feed entry as handed to subscriptions, with its message encoded once for
// all of them.
type change struct {
	store.Change
	once sync.Once
	msg  []byte
}

func (ch *change) message() []byte {
	ch.once.Do(func() {
		if ch.Kind == store.ChangeResync {
			ch.msg = encodeFields(TypeResync, ch.Obj, ch.Rev, ch.Fields)
		} else {
			ch.msg = encodeOp(ch.Obj, ch.Rev, 0, ch.Ops)
		}
	})
	return ch.msg
}

// onChange is the single feed handler. It runs on a feed reader goroutine and never
// blocks: delivery only appends to bounded per-connection queues.
func (b *Bridge) onChange(sc store.Change) {
	if sc.Kind == store.ChangeLost {
		b.hub.each(func(s *sub) {
			if shardOf(s.obj, b.shards) == sc.Shard {
				s.c.forceResync(s)
			}
		})
		return
	}
	if sc.Kind == store.ChangeRemoved {
		// The object starts again from revision 0 (its owner was gone for good). A
		// subscriber, rare since only the owner reads its players, starts over on a new
		// connection: its sub since=<rev> then gets a snapshot, and its op in flight is
		// resent to the new object.
		for _, s := range b.hub.get(sc.Obj) {
			s.c.close(CloseReset, "object removed; resubscribe")
		}
		return
	}
	subs := b.hub.get(sc.Obj)
	if len(subs) == 0 {
		return
	}
	ch := &change{Change: sc}
	for _, s := range subs {
		s.c.deliver(s, ch)
	}
}
