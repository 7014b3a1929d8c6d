package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// runFeedWith runs a feed with cfg (the test timings of runFeed where cfg leaves them
// zero) until the test ends, and waits until it is ready.
func runFeedWith(t *testing.T, st *store.Store, cfg store.FeedConfig, log *slog.Logger) *store.Feed {
	t.Helper()
	if cfg.Block == 0 {
		cfg.Block, cfg.Retry, cfg.ReconcileDelay = 200*time.Millisecond, 50*time.Millisecond, 10*time.Millisecond
	}
	f := store.NewFeed(cfg, st, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, "feed ready", f.Ready)
	return f
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// notifyFlags returns the server's notify-keyspace-events.
func notifyFlags(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	cfg, err := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	return cfg["notify-keyspace-events"]
}

// sets returns how many times the feed set the setting on the one node it knows.
func sets(f *store.Feed) int64 {
	s := f.Keyspace()
	if len(s.Nodes) != 1 || !s.OK() {
		return -1
	}
	return s.Nodes[0].Sets
}

// An outside write to a watched object reaches the feed as a resync.
func outsideWriteSeen(t *testing.T, rdb *redis.Client, st *store.Store, f *store.Feed, col *collector, obj, value string) {
	t.Helper()
	key := fieldsKey(t, rdb, obj)
	if err := rdb.HSet(context.Background(), key, "note", value).Err(); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, "a resync with note="+value, func(g map[string][]store.Change) bool {
		cs := g[obj]
		return len(cs) > 0 && cs[len(cs)-1].Kind == store.ChangeResync && cs[len(cs)-1].Fields["note"] == value
	})
}

// The feed sets notify-keyspace-events on a Redis started without it, sets it again at
// its next connection after the node lost it (what a restart without the setting in its
// configuration does), and reports each step in Keyspace and its collector.
func TestKeyspaceSettingReappliedOnReconnect(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{}) // notify-keyspace-events ""
	rdb := r.Client(t)
	if got := notifyFlags(t, rdb); got != "" {
		t.Fatalf("the test's Redis starts with notify-keyspace-events %q, want none", got)
	}
	st := newStore(t, rdb, store.Config{})
	var logs bytes.Buffer
	lw := &lockedWriter{w: &logs}
	// A check interval longer than the test: only a reconnection may set it again.
	f := runFeedWith(t, st, store.FeedConfig{KeyspaceCheck: time.Hour}, slog.New(slog.NewTextHandler(lw, nil)))
	waitUntil(t, "the setting applied once", func() bool { return sets(f) == 1 })
	if got := notifyFlags(t, rdb); !strings.ContainsRune(got, 'K') || !strings.ContainsRune(got, 'h') || !strings.ContainsRune(got, 'g') {
		t.Fatalf("notify-keyspace-events %q after the feed started, want K, h and g", got)
	}
	col := newCollector(f)
	const obj = "players/ks1/audio"
	f.Watch(obj)
	commit(t, st, store.Commit{Obj: obj, Base: -1, Ops: []store.Op{store.Set("player_state", "connecting")}})
	outsideWriteSeen(t, rdb, st, f, col, obj, "first")

	// The node loses the setting and the feed's connections, as in a restart.
	if err := rdb.ConfigSet(context.Background(), "notify-keyspace-events", "").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the setting applied again after the reconnection", func() bool { return sets(f) == 2 })
	outsideWriteSeen(t, rdb, st, f, col, obj, "second")
	if !strings.Contains(lw.String(), "had been dropped") {
		t.Fatalf("no warning that the setting had been dropped; log:\n%s", lw.String())
	}

	reg := prometheus.NewRegistry()
	if err := reg.Register(f.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()] = v
		}
	}
	if got["dsm_keyspace_notifications"] != 1 || got["dsm_keyspace_notifications_set_total"] != 2 || got["dsm_keyspace_notifications_off"] != 0 {
		t.Fatalf("metrics %v, want the node ok, set twice, not off", got)
	}
}

// A setting dropped without any disconnection (a CONFIG SET by someone else) is set again
// by the periodic check, and a write made while it was missing is still adopted.
func TestKeyspaceSettingCheckedPeriodically(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	f := runFeedWith(t, st, store.FeedConfig{KeyspaceCheck: 100 * time.Millisecond}, nil)
	waitUntil(t, "the setting applied once", func() bool { return sets(f) == 1 })
	col := newCollector(f)
	const obj = "players/ks2/audio"
	f.Watch(obj)
	commit(t, st, store.Commit{Obj: obj, Base: -1, Ops: []store.Op{store.Set("player_state", "connecting")}})
	col.waitFor(t, "the commit", func(g map[string][]store.Change) bool { return len(g[obj]) == 1 })
	if err := rdb.ConfigSet(context.Background(), "notify-keyspace-events", "").Err(); err != nil {
		t.Fatal(err)
	}
	// Made while the node sends no event (or just after the check set it again): either
	// way it becomes a resync, by its event or by the reconcile that follows a reapply.
	outsideWriteSeen(t, rdb, st, f, col, obj, "unnoticed?")
	waitUntil(t, "the setting applied again by the check", func() bool { return sets(f) == 2 })
	if s := f.Keyspace().String(); !strings.Contains(s, "set 2 times") {
		t.Fatalf("status %q", s)
	}
}

// With NoKeyspace the feed leaves the node's setting alone and reports itself off.
func TestKeyspaceOff(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	f := runFeedWith(t, st, store.FeedConfig{KeyspaceCheck: 50 * time.Millisecond, NoKeyspace: true}, nil)
	time.Sleep(200 * time.Millisecond) // four checks, had they run
	if got := notifyFlags(t, rdb); got != "" {
		t.Fatalf("notify-keyspace-events %q with NoKeyspace", got)
	}
	if s := f.Keyspace(); !s.Off || !s.OK() || len(s.Nodes) != 0 {
		t.Fatalf("status %+v", s)
	}
}

// Where CONFIG is refused the status says so and names the error; the feed still runs.
func TestKeyspaceStatusConfigRefused(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{DenyConfig: true})
	st := newStore(t, r.Client(t), store.Config{})
	f := runFeedWith(t, st, store.FeedConfig{KeyspaceCheck: 50 * time.Millisecond}, nil)
	waitUntil(t, "a node in the status", func() bool { return len(f.Keyspace().Nodes) == 1 })
	s := f.Keyspace()
	if s.OK() || s.Nodes[0].Err == "" || !strings.Contains(s.String(), "MISSING") {
		t.Fatalf("status %+v (%s), want the node not ok with an error", s, s)
	}
}
