package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/store"

	"github.com/redis/go-redis/v9"
)

// collector gathers feed changes per object.
type collector struct {
	mu  sync.Mutex
	got map[string][]store.Change
	ch  chan struct{}
}

func newCollector(f *store.Feed) *collector {
	c := &collector{got: map[string][]store.Change{}, ch: make(chan struct{}, 1)}
	f.Subscribe(func(ch store.Change) {
		c.mu.Lock()
		c.got[ch.Obj] = append(c.got[ch.Obj], ch)
		c.mu.Unlock()
		select {
		case c.ch <- struct{}{}:
		default:
		}
	})
	return c
}

func (c *collector) waitFor(t *testing.T, what string, cond func(map[string][]store.Change) bool) {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		c.mu.Lock()
		ok := cond(c.got)
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("feed: timed out waiting for %s", what)
		}
	}
}

func runFeed(t *testing.T, st *store.Store, logw *bytes.Buffer) *store.Feed {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	if logw != nil {
		log = slog.New(slog.NewTextHandler(&lockedWriter{w: logw}, nil))
	}
	f := store.NewFeed(store.FeedConfig{Block: 200 * time.Millisecond, Retry: 50 * time.Millisecond, ReconcileDelay: 10 * time.Millisecond}, st, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !f.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("feed not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

// inOrder checks that every object's changes have revisions 1..n without gaps.
func inOrder(got map[string][]store.Change, objs []string, n int) bool {
	for _, o := range objs {
		cs := got[o]
		if len(cs) < n {
			return false
		}
	}
	return true
}

func checkOrder(t *testing.T, got map[string][]store.Change) {
	t.Helper()
	for o, cs := range got {
		for i, c := range cs {
			if c.Rev != int64(i+1) {
				t.Fatalf("%s: change %d has rev %d", o, i, c.Rev)
			}
		}
	}
}

func testFeedDelivers(t *testing.T, rdb redis.UniversalClient) {
	st := newStore(t, rdb, store.Config{Shards: 4})
	f := runFeed(t, st, nil)
	col := newCollector(f)
	var objs []string
	for i := 0; i < 12; i++ {
		objs = append(objs, fmt.Sprintf("players/c%d/audio", i))
	}
	var wg sync.WaitGroup
	for w, o := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := 1; s <= 20; s++ {
				commit(t, st, store.Commit{Obj: o, Client: fmt.Sprint("w", w), Seq: int64(s), Base: -1,
					Ops: []store.Op{store.Set("n", fmt.Sprint(s))}})
			}
		}()
	}
	wg.Wait()
	col.waitFor(t, "all changes", func(g map[string][]store.Change) bool { return inOrder(g, objs, 20) })
	col.mu.Lock()
	defer col.mu.Unlock()
	checkOrder(t, col.got)
	c := col.got[objs[3]][4]
	if c.Kind != store.ChangeOp || c.Client != "w3" || c.Seq != 5 || len(c.Ops) != 1 || *c.Ops[0].Value != "5" {
		t.Fatalf("change: %+v", c)
	}
}

func TestFeedDeliversInOrder(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	testFeedDelivers(t, r.Client(t))
}

func TestFeedDeliversOnCluster(t *testing.T) {
	t.Parallel()
	c := testpeer.StartCluster(t, testpeer.RedisOptions{})
	testFeedDelivers(t, c.Client(t))
}

// A reader whose connection is killed continues from the last ID it saw: nothing is lost.
func TestFeedSurvivesConnectionKill(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{Shards: 2})
	f := runFeed(t, st, nil)
	col := newCollector(f)
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer admin.Close()
	for s := 1; s <= 30; s++ {
		commit(t, st, store.Commit{Obj: "users/bob", Client: "svc", Seq: int64(s), Base: -1, Ops: []store.Op{store.Set("n", fmt.Sprint(s))}})
		if s%10 == 0 {
			// Kill every other client connection, the blocked XREADs among them.
			if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	col.waitFor(t, "30 changes", func(g map[string][]store.Change) bool { return len(g["users/bob"]) >= 30 })
	col.mu.Lock()
	defer col.mu.Unlock()
	checkOrder(t, col.got)
}

func testOutsideWrite(t *testing.T, rdb redis.UniversalClient, st *store.Store, f *store.Feed) {
	t.Helper()
	col := newCollector(f)
	obj := "players/k9/audio"
	f.Watch(obj)
	var outsideEvents atomic.Int64 // field events seen through OnKeyspace
	defer f.OnKeyspace(func(o string, meta bool, ev string) {
		if o == obj && !meta && ev == "hset" {
			outsideEvents.Add(1)
		}
	})()
	commit(t, st, store.Commit{Obj: obj, Client: "k9", Seq: 1, Base: 0, Ops: []store.Op{store.Set("player_state", "connecting")}})
	col.waitFor(t, "the commit", func(g map[string][]store.Change) bool { return len(g[obj]) == 1 })
	// Writes outside the commit path, as an operator with redis-cli would make them.
	key := fieldsKey(t, rdb, obj)
	if err := rdb.HSet(context.Background(), key, "player_state", "disconnected", "note", "ops").Err(); err != nil {
		t.Fatal(err)
	}
	col.waitFor(t, "a resync", func(g map[string][]store.Change) bool {
		cs := g[obj]
		last := cs[len(cs)-1]
		return last.Kind == store.ChangeResync && last.Fields["player_state"] == "disconnected" && last.Fields["note"] == "ops"
	})
	if outsideEvents.Load() < 2 { // the commit's and the outside write's
		t.Fatalf("OnKeyspace saw %d hset events on %s", outsideEvents.Load(), obj)
	}
	snap, _ := st.Snapshot(context.Background(), obj)
	if snap.Rev != 2 {
		t.Fatalf("adopted write should be rev 2, is %d", snap.Rev)
	}
	// Only one resync: our own commits' events do not count as outside writes.
	commit(t, st, store.Commit{Obj: obj, Client: "k9", Seq: 2, Base: 2, Ops: []store.Op{store.Del("note")}})
	col.waitFor(t, "rev 3", func(g map[string][]store.Change) bool { return len(g[obj]) == 3 })
	time.Sleep(100 * time.Millisecond) // a spurious reconcile would have published by now
	col.mu.Lock()
	checkOrder(t, col.got)
	if n := len(col.got[obj]); n != 3 {
		t.Fatalf("%d changes, want 3: %+v", n, col.got[obj])
	}
	col.mu.Unlock()

	// An outside write in the middle of a burst of commits is still noticed: the commits'
	// own events are accounted for, the outside one is not.
	seq := int64(3)
	for i := 0; i < 30; i++ {
		seq++
		commit(t, st, store.Commit{Obj: obj, Client: "k9", Seq: seq, Base: -1, Ops: []store.Op{store.Set("n", fmt.Sprint(i))}})
		if i == 15 {
			if err := rdb.HSet(context.Background(), key, "sneaky", "1").Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	col.waitFor(t, "a second resync", func(g map[string][]store.Change) bool {
		for _, c := range g[obj][3:] {
			if c.Kind == store.ChangeResync && c.Fields["sneaky"] == "1" {
				return true
			}
		}
		return false
	})
	col.mu.Lock()
	defer col.mu.Unlock()
	checkOrder(t, col.got)
}

func fieldsKey(t *testing.T, rdb redis.UniversalClient, obj string) string {
	t.Helper()
	var found string
	scan := func(ctx context.Context, c *redis.Client) error {
		keys, err := c.Keys(ctx, "dsm:{*}:f:"+obj).Result()
		if len(keys) == 1 {
			found = keys[0]
		}
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(context.Background(), scan)
	} else {
		err = scan(context.Background(), rdb.(*redis.Client))
	}
	if err != nil || found == "" {
		t.Fatalf("fields key of %s: %v", obj, err)
	}
	return found
}

func TestOutsideWriteBecomesResync(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	if err := st.EnableNotifications(context.Background()); err != nil {
		t.Fatal(err)
	}
	flags, _ := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
	if f := flags["notify-keyspace-events"]; !strings.Contains(f, "K") || !strings.Contains(f, "h") {
		t.Fatalf("notify-keyspace-events = %q", f)
	}
	testOutsideWrite(t, rdb, st, runFeed(t, st, nil))
}

func TestOutsideWriteOnCluster(t *testing.T) {
	t.Parallel()
	c := testpeer.StartCluster(t, testpeer.RedisOptions{})
	rdb := c.Client(t)
	st := newStore(t, rdb, store.Config{})
	if err := st.EnableNotifications(context.Background()); err != nil {
		t.Fatal(err)
	}
	testOutsideWrite(t, rdb, st, runFeed(t, st, nil))
}

// Where CONFIG is refused (managed Redis) the store warns once and the feed keeps working.
func TestConfigRefusedWarnsAndWorks(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{DenyConfig: true})
	var buf bytes.Buffer
	lw := &lockedWriter{w: &buf}
	st, err := store.New(store.Config{}, r.Client(t), slog.New(slog.NewTextHandler(lw, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnableNotifications(context.Background()); err != nil {
		t.Fatalf("EnableNotifications must not fail: %v", err)
	}
	if n := strings.Count(lw.String(), "level=WARN"); n != 1 || !strings.Contains(lw.String(), "keyspace notifications") {
		t.Fatalf("want one warning, log:\n%s", lw.String())
	}
	f := runFeed(t, st, nil)
	col := newCollector(f)
	commit(t, st, store.Commit{Obj: "users/cy", Base: -1, Ops: []store.Op{store.Set("name", "Cy")}})
	col.waitFor(t, "the commit", func(g map[string][]store.Change) bool { return len(g["users/cy"]) == 1 })
}

// A reader that was away while its stream was trimmed past the last entry it read reports
// ChangeLost for the shard, so subscribers re-read everything of that shard.
func TestFeedReportsTrimmedStream(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{Shards: 1})
	f := store.NewFeed(store.FeedConfig{Block: 200 * time.Millisecond, Retry: time.Second}, st, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for !f.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	var lost atomic.Int64
	col := newCollector(f)
	f.Subscribe(func(c store.Change) {
		if c.Kind == store.ChangeLost && c.Shard == 0 {
			lost.Add(1)
		}
	})
	commit(t, st, store.Commit{Obj: "users/tim", Base: -1, Ops: []store.Op{store.Set("n", "1")}})
	col.waitFor(t, "the first change", func(g map[string][]store.Change) bool { return len(g["users/tim"]) == 1 })

	// Cut the reader off, and while it waits to retry, trim the stream past what it read.
	admin := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer admin.Close()
	if err := admin.Do(context.Background(), "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 4; i++ {
		commit(t, st, store.Commit{Obj: "users/tim", Base: -1, Ops: []store.Op{store.Set("n", fmt.Sprint(i))}})
	}
	if err := admin.XTrimMaxLen(context.Background(), "dsm:{0}:feed", 1).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for lost.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no ChangeLost after the stream was trimmed past the reader")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
