package store_test

import (
	"context"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestReadAdoptsOutsideWrite: a write made outside the commit path to an object nobody
// watches (so no keyspace event triggers a reconcile) is adopted when the object is next
// read, for a catch-up as for a snapshot: the reader gets the new fields at a new revision,
// and the resync goes to the feed for every other subscriber.
func TestReadAdoptsOutsideWrite(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	ctx := context.Background()
	obj := "players/k1/audio"
	commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 1, Base: 0, Ops: []store.Op{store.Set("player_state", "connecting")}})
	if err := rdb.HSet(ctx, keyOf(obj, "f", st.Config().Shards), "player_state", "failed").Err(); err != nil {
		t.Fatal(err)
	}
	// A client at rev 1 resumes: it must not be told "nothing changed".
	rd, err := st.Since(ctx, obj, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Fields == nil || rd.Rev != 2 || rd.Fields["player_state"] != "failed" {
		t.Fatalf("catch-up after an outside write: %+v", rd)
	}
	snap, _ := st.Snapshot(ctx, obj)
	if snap.Rev != 2 || snap.Fields["player_state"] != "failed" {
		t.Fatalf("snapshot: %+v", snap)
	}
	feed := feedOf(t, st, obj)
	entries, err := rdb.XRange(ctx, feed, "-", "+").Result()
	if err != nil || len(entries) != 2 || entries[1].Values["kind"] != "resync" || entries[1].Values["rev"] != "2" {
		t.Fatalf("feed: %v %v", entries, err)
	}
	// The next commit builds on the adopted state: a replica that applies it to rev 2 holds
	// what Redis holds.
	commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 2, Base: 2, Ops: []store.Op{store.Set("mgw_url", "ws://x")}})
	again, _ := st.Since(ctx, obj, 2)
	if again.Fields != nil || len(again.Log) != 1 || again.Rev != 3 {
		t.Fatalf("catch-up after the adoption: %+v", again)
	}
}

// feedOf names the feed stream of obj's shard.
func feedOf(t *testing.T, st *store.Store, obj string) string {
	t.Helper()
	k := keyOf(obj, "f", st.Config().Shards)
	end := 0
	for i := 5; i < len(k); i++ {
		if k[i] == '}' {
			end = i
			break
		}
	}
	return k[:end+1] + ":feed"
}
