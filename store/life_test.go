package store_test

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestJanitorObjectLife: once a client key has been absent for the grace period, its
// player object goes (with a "removed" feed entry), its players index entry and its dedup
// records go; a key still present keeps everything; what a gone key wrote on an object it
// does not own stays, without its record. After both keys are gone, Redis holds what it
// held before they came, but for the objects they did not own.
func TestJanitorObjectLife(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	testJanitorObjectLife(t, r.Client(t))
}

// TestJanitorObjectLifeCluster runs the same on a 3-master Redis Cluster: every script
// touches one slot, presence and the lease are keys of their own.
func TestJanitorObjectLifeCluster(t *testing.T) {
	t.Parallel()
	c := testpeer.StartCluster(t, testpeer.RedisOptions{})
	testJanitorObjectLife(t, c.Client(t))
}

func testJanitorObjectLife(t *testing.T, rdb redis.UniversalClient) {
	st := newStore(t, rdb, store.Config{})
	j, err := store.NewJanitor(store.JanitorConfig{Grace: time.Minute}, st, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A shared object and the players index exist before the pages come (as they would on a
	// running gateway); the baseline is taken then.
	commit(t, st, store.Commit{Obj: "shared/x", Base: -1, Ops: []store.Op{store.Set("n", "0")}})
	commit(t, st, store.Commit{Obj: "players", Client: "k0", Seq: 1, Base: -1, Ops: []store.Op{store.Set("players/k0/audio", "audio")}})
	commit(t, st, store.Commit{Obj: "players", Client: "k0", Seq: 2, Base: -1, Ops: []store.Op{store.Del("players/k0/audio")}})
	// k0 is long gone: a sweep takes its record, and the baseline is what is left.
	if _, err := j.Sweep(ctx, time.Now().Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	before := objectKeysOf(t, rdb)

	now := time.Now()
	for _, k := range []string{"k1", "k2"} {
		if err := st.Touch(ctx, now, k); err != nil {
			t.Fatal(err)
		}
		commit(t, st, store.Commit{Obj: "players/" + k + "/audio", Client: k, Seq: 1, Base: 0, Ops: []store.Op{store.Set("player_state", "connecting")}})
		commit(t, st, store.Commit{Obj: "players", Client: k, Seq: 1, Base: -1, Ops: []store.Op{store.Set("players/"+k+"/audio", "audio")}})
		commit(t, st, store.Commit{Obj: "shared/x", Client: k, Seq: 1, Base: -1, Ops: []store.Op{store.Set("by", k)}})
	}
	// The AS adapter writes a player without a seq: the owner's entry is refreshed.
	commit(t, st, store.Commit{Obj: "players/k1/audio", Client: "adapter", Base: -1, Ops: []store.Op{store.Set("mgw_state", "connected")}})
	// An incoming call rang k3, whose page never wrote anything: the adapter made its player
	// and its index entry. They go with k3 all the same.
	commit(t, st, store.Commit{Obj: "players/k3/audio", Client: "adapter", Base: -1, Ops: []store.Op{store.Set("player_state", "ringing")}})
	commit(t, st, store.Commit{Obj: "players", Client: "adapter", Base: -1, Ops: []store.Op{store.Set("players/k3/audio", "audio")}})

	// Within the grace period nothing goes, present or not.
	if s, err := j.Sweep(ctx, now.Add(30*time.Second)); err != nil || s.Removed+s.Forgotten != 0 {
		t.Fatalf("sweep within grace: %+v %v", s, err)
	}
	// k2 is still connected (its presence refreshed), k1 left two minutes ago.
	if err := st.Touch(ctx, now.Add(100*time.Second), "k2"); err != nil {
		t.Fatal(err)
	}
	s, err := j.Sweep(ctx, now.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if s.Removed != 2 || s.Forgotten != 3 || s.Kept != 3 {
		t.Fatalf("sweep: %+v, want 2 removed (k1's and k3's players), 3 forgotten (k1 on the index and shared/x, k3's index entry), 3 kept (k2's)", s)
	}
	if rd, _ := st.Snapshot(ctx, "players/k1/audio"); rd.Rev != 0 || len(rd.Fields) != 0 {
		t.Fatalf("k1's player: %+v", rd)
	}
	idx, _ := st.Snapshot(ctx, "players")
	if _, ok := idx.Fields["players/k1/audio"]; ok || idx.Fields["players/k2/audio"] != "audio" || idx.Fields["players/k3/audio"] != "" {
		t.Fatalf("players index: %v", idx.Fields)
	}
	if x, _ := st.Snapshot(ctx, "shared/x"); x.Fields["by"] != "k2" {
		t.Fatalf("shared/x: %v", x.Fields)
	}
	for _, obj := range []string{"players", "shared/x"} {
		if ok, _ := rdb.HExists(ctx, keyOf(obj, "m", st.Config().Shards), "q:k1").Result(); ok {
			t.Fatalf("k1's dedup record on %s survived", obj)
		}
		if ok, _ := rdb.HExists(ctx, keyOf(obj, "m", st.Config().Shards), "q:k2").Result(); !ok {
			t.Fatalf("k2's dedup record on %s is gone though k2 is present", obj)
		}
	}
	feed, _ := rdb.XRange(ctx, feedOf(t, st, "players/k1/audio"), "-", "+").Result()
	if last := feed[len(feed)-1]; last.Values["kind"] != "removed" || last.Values["obj"] != "players/k1/audio" {
		t.Fatalf("last feed entry of the shard: %v", last)
	}

	// k2 leaves too; a later sweep takes its share. Redis then holds the keys of before.
	s, err = j.Sweep(ctx, now.Add(10*time.Minute))
	if err != nil || s.Removed != 1 || s.Forgotten != 2 {
		t.Fatalf("second sweep: %+v %v", s, err)
	}
	after := objectKeysOf(t, rdb)
	if !equalStrings(before, after) {
		t.Fatalf("keys before the pages %v, after they are gone %v", before, after)
	}
	if n, _ := rdb.Exists(ctx, "dsm:presence").Result(); n != 0 {
		t.Fatal("the presence set still holds gone keys")
	}
}

// TestJanitorTrimsFeedsByAge: entries older than FeedMaxAge go, exactly, from every shard.
func TestJanitorTrimsFeedsByAge(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{Shards: 4})
	j, err := store.NewJanitor(store.JanitorConfig{FeedMaxAge: time.Millisecond}, st, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 300; i++ {
		commit(t, st, store.Commit{Obj: "shared/" + string(rune('a'+i%26)), Base: -1, Ops: []store.Op{store.Set("n", "v")}})
	}
	time.Sleep(20 * time.Millisecond) // every entry is now older than FeedMaxAge
	if _, err := j.Sweep(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for shard := 0; shard < 4; shard++ {
		if n, _ := rdb.XLen(ctx, "dsm:{"+string(rune('0'+shard))+"}:feed").Result(); n != 0 {
			t.Fatalf("shard %d keeps %d entries", shard, n)
		}
	}
}

// objectKeysOf lists the DSM's keys but the presence set and the feed streams (which stay,
// trimmed by age: TestJanitorTrimsFeedsByAge).
func objectKeysOf(t *testing.T, rdb redis.UniversalClient) []string {
	t.Helper()
	var keys []string
	var mu sync.Mutex
	scan := func(ctx context.Context, c *redis.Client) error {
		ks, err := c.Keys(ctx, "dsm:*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(context.Background(), scan)
	} else {
		err = scan(context.Background(), rdb.(*redis.Client))
	}
	if err != nil {
		t.Fatal(err)
	}
	out := keys[:0]
	for _, k := range keys {
		if k != "dsm:presence" && !strings.HasSuffix(k, ":feed") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
