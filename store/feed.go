package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// ChangeKind says what a Change carries.
type ChangeKind int

// The kinds of Change.
const (
	// ChangeOp is a committed op (Ops holds its writes).
	ChangeOp ChangeKind = iota
	// ChangeResync replaces the whole object (Fields) at Rev: a write made outside the
	// commit path was adopted.
	ChangeResync
	// ChangeLost says that entries of Shard may have been lost (the stream was trimmed past
	// the reader while it was disconnected): every object of that shard must be re-read.
	ChangeLost
	// ChangeRemoved says the object was removed because its owner was gone for good (see
	// Janitor): its revision starts again from 0, and a subscriber must start over.
	ChangeRemoved
)

// Change is one entry of the change feed. Handlers must treat it as read-only: the same
// value is given to every handler.
type Change struct {
	ID     string
	Shard  int
	Kind   ChangeKind
	Obj    string
	Rev    int64
	Client string
	Seq    int64
	Ops    []Op
	Fields map[string]string
}

// FeedConfig tunes a Feed. Zero fields take their value from DefaultFeedConfig.
type FeedConfig struct {
	// Block is how long one XREAD waits for entries (2 s: short enough to notice a dead
	// connection quickly, long enough to cost nothing when idle).
	Block time.Duration
	// Count is the most entries one XREAD returns (512 keeps a burst to a few reads).
	Count int64
	// ReconcileDelay is how long after a keyspace event on a watched object the
	// reconcile script runs, and how often at most per object (50 ms: the commits of a
	// busy object cause events too; this keeps reconciling to 20 scripts/s per object).
	ReconcileDelay time.Duration
	// Retry is the pause after a Redis error before reading again (500 ms).
	Retry time.Duration
	// KeyspaceCheck is how often the feed reads notify-keyspace-events on every node
	// and sets it again if it went missing (5 s: one CONFIG GET per node; a restart is
	// noticed at once by the subscription, this catches a CONFIG SET by someone else).
	KeyspaceCheck time.Duration
	// NoKeyspace turns keyspace notifications off: the feed neither sets
	// notify-keyspace-events nor listens, and writes made outside the commit path go
	// unnoticed until the object's next commit.
	NoKeyspace bool
}

// DefaultFeedConfig returns every knob of FeedConfig at its default.
func DefaultFeedConfig() FeedConfig {
	return FeedConfig{Block: 2 * time.Second, Count: 512, ReconcileDelay: 50 * time.Millisecond, Retry: 500 * time.Millisecond,
		KeyspaceCheck: 5 * time.Second}
}

// withDefaults returns c with every zero (or negative) field taken from
// DefaultFeedConfig.
func (c FeedConfig) withDefaults() FeedConfig {
	d := DefaultFeedConfig()
	fill(&c.Block, d.Block)
	fill(&c.Count, d.Count)
	fill(&c.ReconcileDelay, d.ReconcileDelay)
	fill(&c.Retry, d.Retry)
	fill(&c.KeyspaceCheck, d.KeyspaceCheck)
	return c
}

// Feed reads every shard's change stream from the last ID it saw and hands each entry to
// the registered handlers, in stream order per shard. It also listens to keyspace
// notifications and reconciles watched objects written outside the commit path; it sets
// notify-keyspace-events on every node at every (re)connection and checks it every
// KeyspaceCheck, so a Redis restarted without the setting is noticed again (Keyspace
// and Collector report it).
type Feed struct {
	cfg   FeedConfig
	st    *Store
	log   *slog.Logger
	ready []atomic.Bool // per shard: last read succeeded
	// reading is, per shard, when the read in progress was sent (Unix ns; 0: none), for
	// Stalled.
	reading []atomic.Int64

	changes  hooks[func(Change)]
	keyspace hooks[func(obj string, meta bool, event string)]

	ks keyspaceState // notify-keyspace-events of every node, for Keyspace

	wmu     sync.Mutex        // guards watched
	watched map[string]*watch // object → watch state
	runCtx  atomic.Pointer[context.Context]
}

// NewFeed returns a feed over the store's shards. A nil log discards.
func NewFeed(cfg FeedConfig, st *Store, log *slog.Logger) *Feed {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Feed{
		cfg:     cfg,
		st:      st,
		log:     log.With("component", "feed"),
		ready:   make([]atomic.Bool, st.cfg.Shards),
		reading: make([]atomic.Int64, st.cfg.Shards),
		watched: make(map[string]*watch),
	}
	return f
}

// Subscribe registers fn for every change; fn runs on the reader goroutine of the change's
// shard and must not block. The returned func removes it.
func (f *Feed) Subscribe(fn func(Change)) (cancel func()) { return f.changes.add(fn) }

// Watch asks the feed to reconcile obj when a keyspace event shows a write to it (so a write
// made outside the commit path reaches subscribers as a resync). Calls nest; the returned
// func undoes one.
func (f *Feed) Watch(obj string) (unwatch func()) {
	f.wmu.Lock()
	w := f.watched[obj]
	if w == nil {
		w = &watch{}
		f.watched[obj] = w
	}
	w.n++
	f.wmu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.wmu.Lock()
			if w.n--; w.n <= 0 {
				delete(f.watched, obj)
			}
			f.wmu.Unlock()
		})
	}
}

// Ready reports whether every shard reader's last read succeeded.
func (f *Feed) Ready() bool {
	for i := range f.ready {
		if !f.ready[i].Load() {
			return false
		}
	}
	return true
}

// stallGrace is how long past its block a read may go unanswered before the feed counts
// as stalled (Stalled): Redis answers a blocking read by the end of its block, and a
// second covers the round trip and a busy machine.
const stallGrace = time.Second

// Stalled reports whether a shard reader has waited longer than its block plus
// stallGrace for Redis to answer: the read went out on a connection that no longer
// reaches Redis (a partition, a frozen server), which fails by itself only at the
// client's read timeout, seconds later, while Ready still reports the last read's
// success.
func (f *Feed) Stalled() bool {
	limit := time.Now().Add(-f.cfg.Block - stallGrace).UnixNano()
	for i := range f.reading {
		if at := f.reading[i].Load(); at != 0 && at < limit {
			return true
		}
	}
	return false
}

// Run reads the feed until ctx ends. It returns ctx's error; Redis errors are logged and
// retried, never fatal.
//
// On a single Redis one reader takes every shard in one XREAD, so a quiet feed costs one
// blocked call and a busy one returns the entries of all shards in one reply; on a Redis
// Cluster, where one command may not span hash slots, each shard has its own reader.
func (f *Feed) Run(ctx context.Context) error {
	f.runCtx.Store(&ctx)
	rd, closeRd := f.readerClient()
	defer closeRd()
	g, ctx := errgroup.WithContext(ctx)
	all := make([]int, f.st.cfg.Shards)
	for i := range all {
		all[i] = i
	}
	if _, cluster := f.st.rdb.(*redis.ClusterClient); cluster {
		for _, shard := range all {
			g.Go(func() error { return f.readShards(ctx, rd, []int{shard}) })
		}
	} else {
		g.Go(func() error { return f.readShards(ctx, rd, all) })
	}
	if !f.cfg.NoKeyspace {
		g.Go(func() error { return f.keyspaceLoop(ctx) })
	}
	return g.Wait()
}

// readerClient returns a client of the feed's own, on the same servers as the store's:
// blocking reads hold their connections, so they must not take them from the pool that
// serves commits; and on a single Redis it does not retry a failed read by itself, so the
// reader sees every disconnect and checks whether the stream was trimmed past it meanwhile.
func (f *Feed) readerClient() (redis.UniversalClient, func()) {
	// Fresh options with the connection settings only: go-redis keeps mutable state behind
	// pointers in Options (maintenance notifications), which a copy would share.
	switch c := f.st.rdb.(type) {
	case *redis.ClusterClient:
		o := c.Options()
		rd := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: o.Addrs, Username: o.Username, Password: o.Password, TLSConfig: o.TLSConfig,
			Dialer: o.Dialer, PoolSize: f.st.cfg.Shards + 2,
		})
		return rd, func() { rd.Close() }
	case *redis.Client:
		o := c.Options()
		rd := redis.NewClient(&redis.Options{
			Network: o.Network, Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
			TLSConfig: o.TLSConfig, Dialer: o.Dialer, PoolSize: 2, MaxRetries: -1,
		})
		return rd, func() { rd.Close() }
	}
	return f.st.rdb, func() {} // an unknown client: share it, and leave it open
}

// readShards reads the streams of shards with one XREAD per round, from the last ID seen
// on each.
func (f *Feed) readShards(ctx context.Context, rd redis.UniversalClient, shards []int) error {
	log := f.log.With("shards", len(shards), "first", shards[0])
	last := make([]string, len(shards)) // "" until the tail was read
	index := make(map[string]int, len(shards))
	for i, sh := range shards {
		index[feedKey(sh)] = i
	}
	args := make([]string, 2*len(shards))
	setReady := func(v bool) {
		for _, sh := range shards {
			f.ready[sh].Store(v)
		}
	}
	// reading marks a read to Redis in progress (sent now) or over (false), for Stalled.
	reading := func(on bool) {
		var at int64
		if on {
			at = time.Now().UnixNano()
		}
		for _, sh := range shards {
			f.reading[sh].Store(at)
		}
	}
	for ctx.Err() == nil {
		ok, asked := true, false
		for i, sh := range shards {
			if last[i] != "" {
				continue
			}
			reading(true)
			id, err := lastID(ctx, rd, feedKey(sh))
			reading(false)
			if err != nil {
				f.fail(ctx, log, shards, "read feed tail", err)
				ok = false
				break
			}
			last[i], asked = id, true
		}
		if !ok {
			continue
		}
		if asked {
			setReady(true) // Redis answered; do not wait a whole block to say so
		}
		for i, sh := range shards {
			args[i], args[len(shards)+i] = feedKey(sh), last[i]
		}
		reading(true)
		res, err := rd.XRead(ctx, &redis.XReadArgs{Streams: args, Count: f.cfg.Count, Block: f.cfg.Block}).Result()
		reading(false)
		if errors.Is(err, redis.Nil) {
			setReady(true) // a read that found nothing new: Redis answers
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			f.fail(ctx, log, shards, "read feed", err)
			for i, sh := range shards {
				if lost, cerr := trimmedPast(ctx, rd, feedKey(sh), last[i]); cerr == nil && lost {
					log.Warn("feed trimmed past the last entry read; resyncing the shard", "shard", sh, "last", last[i])
					f.dispatch(Change{Shard: sh, Kind: ChangeLost})
					last[i] = ""
				}
			}
			continue
		}
		setReady(true)
		for _, s := range res {
			i, known := index[s.Stream]
			if !known {
				continue
			}
			for _, m := range s.Messages {
				last[i] = m.ID
				c, err := parseEntry(shards[i], m)
				if err != nil {
					log.Error("skipping malformed feed entry", "stream", s.Stream, "id", m.ID, "err", err)
					continue
				}
				f.dispatch(c)
			}
		}
	}
	setReady(false)
	return ctx.Err()
}

func (f *Feed) fail(ctx context.Context, log *slog.Logger, shards []int, what string, err error) {
	for _, sh := range shards {
		f.ready[sh].Store(false)
	}
	log.Warn("feed reader: "+what+" failed; retrying", "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(f.cfg.Retry):
	}
}

// lastID returns the ID of the newest entry of the stream ("0-0" when empty), so the
// reader starts exactly after it and misses nothing written later.
func lastID(ctx context.Context, rd redis.UniversalClient, key string) (string, error) {
	msgs, err := rd.XRevRangeN(ctx, key, "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// trimmedPast reports whether the oldest entry still in the stream is newer than last,
// which means entries after last may have been trimmed away unread.
func trimmedPast(ctx context.Context, rd redis.UniversalClient, key, last string) (bool, error) {
	if last == "" || last == "0-0" {
		return false, nil
	}
	msgs, err := rd.XRangeN(ctx, key, "-", "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return false, err
	}
	return compareIDs(msgs[0].ID, last) > 0 && !exists(ctx, rd, key, last), nil
}

func exists(ctx context.Context, rd redis.UniversalClient, key, id string) bool {
	msgs, err := rd.XRangeN(ctx, key, id, id, 1).Result()
	return err == nil && len(msgs) == 1
}

func compareIDs(a, b string) int {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	x, _ := strconv.ParseUint(am, 10, 64)
	y, _ := strconv.ParseUint(bm, 10, 64)
	if x != y {
		if x < y {
			return -1
		}
		return 1
	}
	x, _ = strconv.ParseUint(as, 10, 64)
	y, _ = strconv.ParseUint(bs, 10, 64)
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func (f *Feed) dispatch(c Change) {
	for _, h := range f.changes.load() {
		h.fn(c)
	}
}

func parseEntry(shard int, m redis.XMessage) (Change, error) {
	str := func(k string) string { s, _ := m.Values[k].(string); return s }
	c := Change{ID: m.ID, Shard: shard, Obj: str("obj"), Client: str("c")}
	var err error
	if c.Rev, err = strconv.ParseInt(str("rev"), 10, 64); err != nil {
		return c, fmt.Errorf("rev: %w", err)
	}
	c.Seq, _ = strconv.ParseInt(str("q"), 10, 64)
	switch str("kind") {
	case "op":
		c.Kind = ChangeOp
		if c.Ops, err = ParseOps(str("ops")); err != nil {
			return c, fmt.Errorf("feed entry %s: %w", m.ID, err)
		}
	case "resync":
		c.Kind = ChangeResync
		// cjson encodes an empty table as {}, so "fields" is always an object.
		if err := json.Unmarshal([]byte(str("fields")), &c.Fields); err != nil {
			return c, fmt.Errorf("fields: %w", err)
		}
		if c.Fields == nil {
			c.Fields = map[string]string{}
		}
	case "removed":
		c.Kind = ChangeRemoved
	default:
		return c, fmt.Errorf("unknown kind %q", str("kind"))
	}
	return c, nil
}
