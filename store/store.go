package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/commit.lua
var commitLua string

//go:embed lua/read.lua
var readLua string

// Config tunes the store. Zero fields take their value from DefaultConfig (the defaults
// of docs/dsm-protocol.md); every instance sharing a Redis must use the same Shards.
type Config struct {
	// Shards is the number of change-feed streams (and hash tags). 16 spreads the feed over
	// the masters of a small cluster while keeping one blocking reader per shard cheap.
	Shards int
	// OplogLen is how many ops per object are kept for catch-up: 256 covers a reconnect of
	// a few seconds on a busy object; older clients get a snapshot.
	OplogLen int
	// FeedLen caps each feed stream (approximately): 100,000 entries is minutes of traffic
	// at full load, far longer than a reader reconnect takes.
	FeedLen int
	// MaxFields caps the fields of an object (index objects excepted): 256 is far more
	// than a player or a user object has, and bounds what one object costs a subscriber.
	MaxFields int
	// Limits bound the size of one op; each zero field takes its default.
	Limits Limits
	// Pipeline is how many commits one Redis pipeline carries at most (64), and
	// Pipelines how many pipelines may be in flight at once (4: enough to keep Redis
	// busy while replies travel back, few enough that batches form under load).
	// Pipeline 1 sends every commit on its own.
	Pipeline, Pipelines int
}

// DefaultConfig returns every knob of Config at its default.
func DefaultConfig() Config {
	return Config{
		Shards:    16,
		OplogLen:  256,
		FeedLen:   100000,
		MaxFields: 256,
		// 32 elements cover the largest op a page makes (a player's whole set-up) with
		// room; field names are short identifiers; 4 KiB holds an SDP-sized value.
		Limits:    Limits{MaxOps: 32, MaxFieldBytes: 128, MaxValueBytes: 4096},
		Pipeline:  64,
		Pipelines: 4,
	}
}

// withDefaults returns c with every zero (or negative) field taken from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	fill(&c.Shards, d.Shards)
	fill(&c.OplogLen, d.OplogLen)
	fill(&c.FeedLen, d.FeedLen)
	fill(&c.MaxFields, d.MaxFields)
	fill(&c.Limits.MaxOps, d.Limits.MaxOps)
	fill(&c.Limits.MaxFieldBytes, d.Limits.MaxFieldBytes)
	fill(&c.Limits.MaxValueBytes, d.Limits.MaxValueBytes)
	fill(&c.Pipeline, d.Pipeline)
	fill(&c.Pipelines, d.Pipelines)
	return c
}

// fill sets *v to d when *v is not positive.
func fill[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Store commits ops to objects in Redis and reads them back. It is safe for concurrent use.
type Store struct {
	cfg    Config
	rdb    redis.UniversalClient
	log    *slog.Logger
	schema *Schema
	commit *redis.Script
	// readScript also adopts outside writes (see read).
	readScript *redis.Script
	batch      *batcher
}

// New returns a Store on rdb (a *redis.Client or *redis.ClusterClient). A nil log
// discards.
func New(cfg Config, rdb redis.UniversalClient, log *slog.Logger) (*Store, error) {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sc, err := LoadSchema()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:        cfg,
		rdb:        rdb,
		log:        log.With("component", "store"),
		schema:     sc,
		commit:     redis.NewScript(commitLua),
		readScript: redis.NewScript(readLua),
	}
	if cfg.Pipeline > 1 {
		s.batch = newBatcher(rdb, s.commit, cfg.Pipeline, cfg.Pipelines)
	}
	return s, nil
}

// Config returns the filled-in configuration.
func (s *Store) Config() Config { return s.cfg }

// Schema returns the well-known field names.
func (s *Store) Schema() *Schema { return s.schema }

// Redis returns the client the store uses (for health checks).
func (s *Store) Redis() redis.UniversalClient { return s.rdb }

// Commit is one op to commit.
type Commit struct {
	Obj    string
	Client string // writer id for deduplication (no spaces, at most 128 bytes); "" disables it
	Seq    int64  // 1, 2, 3 ... per (Client, Obj), at most MaxSafeInt; 0 disables deduplication
	Base   int64  // revision the op was made on; -1 for a blind write
	// Epoch names the writer's incarnation (a page load of one client key; at most 32
	// bytes of [A-Za-z0-9_-], "" for none). Seqs deduplicate within an epoch; an op of a
	// new epoch whose Seq is not above the writer's last is refused with a
	// *SeqReusedError, so a reloaded page renumbers instead of having its op taken for a
	// resend of an older one.
	Epoch string
	Ops   []Op
}

// Committed is the outcome of a successful Commit.
type Committed struct {
	Rev int64  // the revision of the op
	Dup bool   // the op had been committed before (a resend); nothing was written now
	ID  string // the feed entry ID ("" for a Dup)
}

// maxClientBytes bounds a writer id: a client key is 26 bytes; service names are short.
const maxClientBytes = 128

// checkCommit checks what Validate does not: the address, the writer id, the seq and base
// bounds, and the players index schema.
func (s *Store) checkCommit(c Commit) error {
	if err := ValidAddress(c.Obj); err != nil {
		return err
	}
	if len(c.Client) > maxClientBytes || strings.ContainsAny(c.Client, " \t\r\n") || !utf8.ValidString(c.Client) {
		return fmt.Errorf("%w: writer id %.40q", ErrBadOp, c.Client)
	}
	if !ValidEpoch(c.Epoch) {
		return fmt.Errorf("%w: epoch %.40q", ErrBadOp, c.Epoch)
	}
	if c.Seq < 0 || c.Seq > MaxSafeInt {
		return fmt.Errorf("%w: seq %d outside 0..2^53-1", ErrBadOp, c.Seq)
	}
	if c.Base < -1 || c.Base > MaxSafeInt {
		return fmt.Errorf("%w: base %d outside -1..2^53-1", ErrBadOp, c.Base)
	}
	if err := Validate(c.Ops, s.cfg.Limits); err != nil {
		return err
	}
	if err := s.schema.ValidatePlayerAddress(c.Obj); err != nil {
		return err
	}
	return s.schema.ValidateIndexOp(c.Obj, c.Ops)
}

// Commit applies one op atomically in one round trip (the commit script of
// docs/dsm-protocol.md). It returns *ExpectError, ErrStale, ErrBaseAhead,
// ErrTooManyFields, *SeqReusedError, ErrScript or a validation error without writing
// anything; any other error means Redis did not answer, and the op may or may not have
// been committed (a resend with the same seq tells).
func (s *Store) Commit(ctx context.Context, c Commit) (Committed, error) {
	if err := s.checkCommit(c); err != nil {
		return Committed{}, err
	}
	writes := AppendOps(make([]byte, 0, 64*len(c.Ops)), Writes(c.Ops))
	maxFields := s.cfg.MaxFields
	if s.schema.IsIndex(c.Obj) {
		maxFields = 0
	}
	k := keysFor(c.Obj, s.cfg.Shards)
	keys := []string{k.fields, k.meta, k.log, k.feed, k.writers}
	// The owner of an object under players/ is the client key in its address, whoever
	// writes it: the object goes when that key is gone for good (see Janitor).
	owner, _ := s.schema.Owner(c.Obj)
	args := make([]any, 0, 11+3*len(c.Ops))
	args = append(args, c.Obj, c.Client, c.Seq, c.Base, writes, s.cfg.OplogLen, s.cfg.FeedLen, maxFields,
		c.Epoch, owner, time.Now().UnixMilli())
	for _, o := range c.Ops {
		kind, v := "d", ""
		switch {
		case o.Kind == OpSet:
			kind, v = "s", *o.Value
		case o.Kind == OpExpect && o.Value == nil:
			kind = "a"
		case o.Kind == OpExpect:
			kind, v = "e", *o.Value
		}
		args = append(args, kind, o.Field, v)
	}
	var res []any
	var err error
	if s.batch != nil {
		res, err = s.batch.run(ctx, keys, args...)
	} else {
		res, err = s.commit.Run(ctx, s.rdb, keys, args...).Slice()
	}
	if err != nil {
		if scriptFailed(err) {
			return Committed{}, fmt.Errorf("store: commit %s seq %d at base %d: %w: %v", c.Obj, c.Seq, c.Base, ErrScript, err)
		}
		return Committed{}, fmt.Errorf("store: commit %s seq %d at base %d: %w", c.Obj, c.Seq, c.Base, err)
	}
	if len(res) < 2 {
		return Committed{}, fmt.Errorf("store: commit %s: short reply %v", c.Obj, res)
	}
	status, _ := res[0].(string)
	rev, _ := res[1].(int64)
	switch status {
	case "ok":
		id, _ := res[2].(string)
		return Committed{Rev: rev, ID: id}, nil
	case "dup":
		return Committed{Rev: rev, Dup: true}, nil
	case "stale":
		return Committed{}, fmt.Errorf("store: %s seq %d: %w", c.Obj, c.Seq, ErrStale)
	case "reused":
		last, _ := strconv.ParseInt(fmt.Sprint(res[2]), 10, 64)
		return Committed{}, &SeqReusedError{Obj: c.Obj, Seq: c.Seq, Last: last}
	case "base_ahead":
		return Committed{}, fmt.Errorf("store: %s base %d > rev %d: %w", c.Obj, c.Base, rev, ErrBaseAhead)
	case "fields":
		return Committed{}, fmt.Errorf("store: %s would have %v fields > %d: %w", c.Obj, res[2], maxFields, ErrTooManyFields)
	case "expect":
		e := &ExpectError{Field: fmt.Sprint(res[2])}
		for _, o := range c.Ops {
			if o.Kind == OpExpect && o.Field == e.Field {
				e.Want = o.Value
				break
			}
		}
		if len(res) > 3 {
			if h, ok := res[3].(string); ok {
				e.Have = &h
			}
		}
		return Committed{}, e
	}
	return Committed{}, fmt.Errorf("store: commit %s: unexpected reply %v", c.Obj, res)
}

// EnableNotifications turns on the keyspace events the store needs (hash events and generic
// del, K h g), keeping whatever was set already. If Redis refuses CONFIG (as managed
// services do) it logs one warning and returns nil: the change feed still works, only
// writes made outside the commit path go unnoticed. A running Feed does the same on every
// (re)connection to a node and keeps checking it; this is for a store without a feed.
func (s *Store) EnableNotifications(ctx context.Context) error {
	err := forEachMaster(ctx, s.rdb, func(ctx context.Context, c *redis.Client) error {
		cur, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
		if err != nil {
			return err
		}
		flags := mergeFlags(cur["notify-keyspace-events"], "Khg")
		return c.ConfigSet(ctx, "notify-keyspace-events", flags).Err()
	})
	if err != nil {
		s.log.Warn("cannot enable keyspace notifications; writes made outside the commit path will not reach subscribers",
			"err", err)
	}
	return nil
}

// mergeFlags adds the notify-keyspace-events flags in add to cur. "A" already means every
// class, so it absorbs g and h.
func mergeFlags(cur, add string) string {
	out := cur
	for _, f := range add {
		if !containsRune(out, f) && !(containsRune(out, 'A') && f != 'K' && f != 'E') {
			out += string(f)
		}
	}
	return out
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}

func forEachMaster(ctx context.Context, rdb redis.UniversalClient, fn func(context.Context, *redis.Client) error) error {
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, fn)
	case *redis.Client:
		return fn(ctx, c)
	}
	return errors.New("store: unsupported redis client type")
}

// maxEpochBytes bounds an epoch: 128 random bits in base64 are 22 characters.
const maxEpochBytes = 32

// ValidEpoch reports whether e can be a writer epoch: empty, or 1 to 32 characters of
// [A-Za-z0-9_-].
func ValidEpoch(e string) bool {
	if len(e) > maxEpochBytes {
		return false
	}
	for i := 0; i < len(e); i++ {
		c := e[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// scriptFailed reports whether err is an error reply of a script that ran (a Lua runtime
// error is "ERR user_script:..." or "ERR Error running script..."), as opposed to a
// transient refusal (LOADING, READONLY, BUSY, OOM, CLUSTERDOWN) or no answer at all.
func scriptFailed(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := rerr.Error()
	return strings.HasPrefix(msg, "ERR ") && strings.Contains(msg, "script")
}
