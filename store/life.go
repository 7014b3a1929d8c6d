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

	"github.com/redis/go-redis/v9"
)

//go:embed lua/remove.lua
var removeLua string

//go:embed lua/forget.lua
var forgetLua string

// presenceKey is the sorted set of client keys scored by the unix ms at which a
// connection of theirs was last seen open (docs/dsm-protocol.md, "Object life").
const presenceKey = "dsm:presence"

// janitorLease is held by the instance sweeping this round, so that one instance does
// the work (a second one would only find nothing left to do).
const janitorLease = "dsm:janitor"

// presenceChunk bounds the members of one ZADD: a refresh of 10,000 connections is ten
// commands, none long enough to stall Redis.
const presenceChunk = 1000

// JanitorConfig tunes a Janitor. Zero fields take their value from DefaultJanitorConfig.
type JanitorConfig struct {
	// Grace is how long a client key may have no open connection before it is gone for
	// good: its player objects are removed (which ends their calls), its players index
	// entries and its dedup records deleted. A page that reloads, or whose network drops
	// for less than this, keeps everything. 2 minutes covers a reload, a laptop lid closed
	// for a moment and a mobile handover; a call whose page went away ends within it.
	Grace time.Duration
	// FeedMaxAge is how long a feed entry is kept (besides the length cap): a reader that
	// was disconnected longer resyncs its subscriptions anyway, and trimming by age is
	// what brings an idle gateway back to the same memory (10 minutes: far longer than a
	// reader reconnect takes).
	FeedMaxAge time.Duration
	// Interval is how often a sweep runs (Grace/8: an object goes at most an eighth of the
	// grace period late).
	Interval time.Duration
	// Batch is how many writer index entries one read takes per shard (1000).
	Batch int
}

// DefaultJanitorConfig returns every knob of JanitorConfig at its default (Interval is
// derived from Grace when zero).
func DefaultJanitorConfig() JanitorConfig {
	return JanitorConfig{Grace: 2 * time.Minute, FeedMaxAge: 10 * time.Minute, Batch: 1000}
}

// withDefaults returns c with every zero (or negative) field taken from
// DefaultJanitorConfig, and Interval derived from Grace.
func (c JanitorConfig) withDefaults() JanitorConfig {
	d := DefaultJanitorConfig()
	fill(&c.Grace, d.Grace)
	fill(&c.FeedMaxAge, d.FeedMaxAge)
	fill(&c.Batch, d.Batch)
	fill(&c.Interval, c.Grace/8)
	return c
}

// Janitor removes what page sessions leave behind once their client key is gone for good
// (docs/dsm-protocol.md, "Object life"), and trims the feed streams by age. Every gateway
// instance may run one; a lease lets one instance sweep per round.
type Janitor struct {
	cfg      JanitorConfig
	st       *Store
	log      *slog.Logger
	instance string
	remove   *redis.Script
	forget   *redis.Script
}

// NewJanitor returns a Janitor of st's objects. instance names this process in the lease
// (required); a nil log discards.
func NewJanitor(cfg JanitorConfig, st *Store, instance string, log *slog.Logger) (*Janitor, error) {
	if instance == "" {
		return nil, fmt.Errorf("store: janitor: %w", ErrNoInstance)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Janitor{
		cfg:      cfg.withDefaults(),
		st:       st,
		log:      log.With("component", "janitor"),
		instance: instance,
		remove:   redis.NewScript(removeLua),
		forget:   redis.NewScript(forgetLua),
	}, nil
}

// Config returns the filled-in configuration.
func (j *Janitor) Config() JanitorConfig { return j.cfg }

// Run sweeps every Interval until ctx ends, when this instance wins the round's lease.
// Redis errors are logged and the next round tries again; it returns ctx's error.
func (j *Janitor) Run(ctx context.Context) error {
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		ok, err := j.st.rdb.SetNX(ctx, janitorLease, j.instance, j.cfg.Interval).Result()
		if err != nil || !ok {
			if err != nil && ctx.Err() == nil {
				j.log.Warn("janitor lease", "err", err)
			}
			continue
		}
		st, err := j.Sweep(ctx, time.Now())
		if err != nil && ctx.Err() == nil {
			j.log.Warn("sweep failed; the next round tries again", "err", err)
		}
		if st.Removed+st.Forgotten > 0 {
			j.log.Info("swept", "removed", st.Removed, "forgotten", st.Forgotten, "kept", st.Kept)
		}
	}
}

// SweepStats counts what one sweep did.
type SweepStats struct {
	Removed   int // player objects of gone keys removed
	Forgotten int // dedup records (and index entries) of gone writers deleted
	Kept      int // old entries whose key is still present, revisited a grace period later
}

// Sweep does one round at time now: drops presence older than the grace period, trims
// every feed stream by age, then, for every writer index entry older than the grace
// period whose client key is not present, removes the key's own player object (and its
// index entries) or forgets the writer on a shared object. It is idempotent: a second
// instance sweeping at the same time finds only less to do.
func (j *Janitor) Sweep(ctx context.Context, now time.Time) (SweepStats, error) {
	var st SweepStats
	cutoff := now.Add(-j.cfg.Grace).UnixMilli()
	if err := j.dropGoneKeys(ctx, cutoff); err != nil {
		return st, err
	}
	// The feeds first: a long sweep (a backlog after an outage) must not hold them up.
	errs := []error{j.trimFeeds(ctx)}
	for shard := 0; shard < j.st.cfg.Shards; shard++ {
		if err := j.sweepShard(ctx, shard, cutoff, &st); err != nil {
			errs = append(errs, err)
		}
	}
	return st, errors.Join(errs...)
}

// sweepShard handles the shard's writer index entries older than cutoff, Batch at a time
// and each batch in one pipeline (a backlog of 10,000 entries is ten round trips, not
// thirty thousand), until none is left.
func (j *Janitor) sweepShard(ctx context.Context, shard int, cutoff int64, st *SweepStats) error {
	rdb := j.st.rdb
	wk := writersKey(shard)
	for ctx.Err() == nil {
		entries, err := rdb.ZRangeByScoreWithScores(ctx, wk, &redis.ZRangeBy{
			Min: "-inf", Max: strconv.FormatInt(cutoff, 10), Count: int64(j.cfg.Batch),
		}).Result()
		if err != nil {
			return fmt.Errorf("store: sweep shard %d: %w", shard, err)
		}
		if len(entries) == 0 {
			return nil
		}
		clients := make([]string, len(entries))
		for i, e := range entries {
			m, _ := e.Member.(string)
			clients[i], _, _ = strings.Cut(m, " ")
		}
		seen, err := rdb.ZMScore(ctx, presenceKey, clients...).Result()
		if err != nil {
			return fmt.Errorf("store: sweep shard %d: presence: %w", shard, err)
		}
		var gone []goneEntry
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, e := range entries {
				member, _ := e.Member.(string)
				client, obj, ok := strings.Cut(member, " ")
				switch {
				case !ok:
					p.ZRem(ctx, wk, member) // not a member the commit script writes
				case seen[i] > float64(cutoff):
					// Present: look again a grace period after its last sighting.
					st.Kept++
					p.ZAddXX(ctx, wk, redis.Z{Score: seen[i], Member: member})
				default:
					g := goneEntry{client: client, obj: obj, member: member, score: int64(e.Score)}
					g.cmd = j.goneCmd(ctx, p, g)
					gone = append(gone, g)
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			if !noScript(err) {
				return fmt.Errorf("store: sweep shard %d: %w", shard, err)
			}
			// First use on this server (or after SCRIPT FLUSH): load both, read again.
			if err := j.loadScripts(ctx); err != nil {
				return err
			}
			continue
		}
		if err := j.settle(ctx, gone, st); err != nil {
			return err
		}
		if len(entries) < j.cfg.Batch {
			return nil
		}
	}
	return ctx.Err()
}

// dropGoneKeys deletes the presence of the keys not seen since cutoff, and their object
// sets (Claim): first every such set, Batch keys a pipeline, then the presence entries in
// one command. (A key that comes back in between keeps its presence, its score being newer
// now; its set is rebuilt by its next writes.)
func (j *Janitor) dropGoneKeys(ctx context.Context, cutoff int64) error {
	rdb := j.st.rdb
	max := "(" + strconv.FormatInt(cutoff, 10)
	for offset := int64(0); ctx.Err() == nil; offset += int64(j.cfg.Batch) {
		keys, err := rdb.ZRangeByScore(ctx, presenceKey, &redis.ZRangeBy{Min: "-inf", Max: max,
			Offset: offset, Count: int64(j.cfg.Batch)}).Result()
		if err != nil {
			return fmt.Errorf("store: sweep presence: %w", err)
		}
		if len(keys) == 0 {
			break
		}
		_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, objectsPrefix+k)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("store: sweep object sets: %w", err)
		}
	}
	if err := rdb.ZRemRangeByScore(ctx, presenceKey, "-inf", max).Err(); err != nil {
		return fmt.Errorf("store: sweep presence: %w", err)
	}
	return ctx.Err()
}

// goneEntry is a writer index entry of a client key gone for good, and the script run on it.
type goneEntry struct {
	client, obj, member string
	score               int64
	own                 bool // obj is the client's own player object: removed
	cmd                 *redis.Cmd
}

// goneCmd queues the script for g on p: remove for the client's own player object,
// forget for anything else.
func (j *Janitor) goneCmd(ctx context.Context, p redis.Pipeliner, g goneEntry) *redis.Cmd {
	sc := j.st.schema
	k := keysFor(g.obj, j.st.cfg.Shards)
	keys := []string{k.fields, k.meta, k.log, k.feed, k.writers}
	if owner, ok := sc.Owner(g.obj); ok && owner == g.client {
		return j.remove.EvalSha(ctx, p, keys, g.obj, g.member, g.score, j.st.cfg.FeedLen)
	}
	return j.forget.EvalSha(ctx, p, keys, j.forgetArgs(g.client, g.obj, g.member, g.score)...)
}

// forgetArgs are the forget script's arguments; on the players index they name the
// client's entries, one per media kind.
func (j *Janitor) forgetArgs(client, obj, member string, score int64) []any {
	sc := j.st.schema
	args := []any{obj, client, member, score, j.st.cfg.OplogLen, j.st.cfg.FeedLen}
	if obj == sc.Players.Index {
		for _, m := range sc.Players.Media {
			args = append(args, sc.PlayerAddress(client, m))
		}
	}
	return args
}

// settle counts what the scripts of gone did, and for every player object removed
// deletes its index entries too, whoever wrote them (the AS adapter adds one for an
// incoming call, without a record of the key's own), in a second pipeline.
func (j *Janitor) settle(ctx context.Context, gone []goneEntry, st *SweepStats) error {
	idx := j.st.schema.Players.Index
	var removed []goneEntry
	for _, g := range gone {
		res, err := g.cmd.Slice()
		if err != nil {
			return fmt.Errorf("store: sweep %s of %s: %w", g.obj, g.client, err)
		}
		switch res[0] {
		case "removed":
			st.Removed++
			removed = append(removed, g)
		case "forgot":
			st.Forgotten++
		}
	}
	if len(removed) == 0 {
		return nil
	}
	k := keysFor(idx, j.st.cfg.Shards)
	keys := []string{k.fields, k.meta, k.log, k.feed, k.writers}
	cmds := make([]*redis.Cmd, len(removed))
	_, err := j.st.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, g := range removed {
			cmds[i] = j.forget.EvalSha(ctx, p, keys, j.forgetArgs(g.client, idx, g.client+" "+idx, g.score)...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("store: sweep index entries: %w", err)
	}
	for _, c := range cmds {
		if res, err := c.Slice(); err == nil && len(res) > 1 {
			if rev, _ := res[1].(int64); rev > 0 {
				st.Forgotten++
			}
		}
	}
	return nil
}

// loadScripts loads the janitor's scripts (EvalSha in a pipeline cannot fall back to
// EVAL by itself).
func (j *Janitor) loadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{j.remove, j.forget} {
		if err := sc.Load(ctx, j.st.rdb).Err(); err != nil {
			return fmt.Errorf("store: load janitor scripts: %w", err)
		}
	}
	return nil
}

// noScript reports whether err is Redis's NOSCRIPT (the script is not loaded there yet).
func noScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }

// trimFeeds drops feed entries older than FeedMaxAge from every shard, exactly (an
// approximate trim keeps up to a node of entries, which on an idle gateway would never
// go). The age is measured on Redis's clock, which made the entry IDs.
func (j *Janitor) trimFeeds(ctx context.Context) error {
	now, err := j.st.rdb.Time(ctx).Result()
	if err != nil {
		return fmt.Errorf("store: trim feeds: %w", err)
	}
	minID := strconv.FormatInt(now.Add(-j.cfg.FeedMaxAge).UnixMilli(), 10)
	for shard := 0; shard < j.st.cfg.Shards; shard++ {
		if err := j.st.rdb.XTrimMinID(ctx, feedKey(shard), minID).Err(); err != nil {
			return fmt.Errorf("store: trim feed %d: %w", shard, err)
		}
	}
	return nil
}

// Touch records that the client keys have an open connection at time at (the presence
// the Janitor reads). The bridge calls it at hello, at close and periodically for every
// open connection.
func (s *Store) Touch(ctx context.Context, at time.Time, keys ...string) error {
	score := float64(at.UnixMilli())
	for len(keys) > 0 {
		n := min(len(keys), presenceChunk)
		zs := make([]redis.Z, n)
		for i, k := range keys[:n] {
			zs[i] = redis.Z{Score: score, Member: k}
		}
		// GT: a late Touch (a close reported after a newer hello elsewhere) never moves a
		// key's presence back.
		if err := s.rdb.ZAddGT(ctx, presenceKey, zs...).Err(); err != nil {
			return fmt.Errorf("store: presence: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}
