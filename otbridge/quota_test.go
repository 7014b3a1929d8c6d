package otbridge_test

import (
	"context"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// TestObjectsPerKey: a client key may make MaxObjects objects under players/<key>/ (its
// players and private objects), across its connections; one more is refused with
// too_many_objects and not written; writing one it has is always allowed. (One connection
// once made 430 objects in 0.15 s.) When the key is gone for good, the count goes too.
func TestObjectsPerKey(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{MaxObjects: 3}, store.Config{}, nil)
	sess := in.session(t, "")
	k := sess.Client
	op := func(c *raw, obj string, seq int) map[string]any {
		c.send(`{"t":"op","obj":"` + obj + `","seq":` + itoa(int64(seq)) + `,"ops":[{"o":"set","f":"a","v":"b"}]}`)
		return c.recv()
	}
	c := dialRaw(t, in.url)
	c.hello(sess.Token)
	for i, obj := range []string{"players/" + k + "/audio", "players/" + k + "/video", "players/" + k + "/bench/1"} {
		if m := op(c, obj, i+1); m["t"] != "ack" {
			t.Fatalf("%s: %v", obj, m)
		}
	}
	if m := op(c, "players/"+k+"/bench/2", 1); m["t"] != "nack" || m["code"] != otbridge.CodeTooManyObjects {
		t.Fatalf("fourth object: %v, want a too_many_objects nack", m)
	}
	// Another connection of the key: the count is the key's; its objects stay writable.
	c2 := dialRaw(t, in.url)
	c2.hello(sess.Token)
	if m := op(c2, "players/"+k+"/bench/3", 1); m["code"] != otbridge.CodeTooManyObjects {
		t.Fatalf("fourth object on another connection: %v", m)
	}
	if m := op(c2, "players/"+k+"/audio", 9); m["t"] != "ack" {
		t.Fatalf("an object it has: %v", m)
	}
	ctx := context.Background()
	if snap, _ := in.st.Snapshot(ctx, "players/"+k+"/bench/2"); snap.Rev != 0 {
		t.Fatalf("the refused object was written: %+v", snap)
	}
	// Gone for good: the janitor removes its objects and its count.
	c.ws.Close()
	c2.ws.Close()
	j, err := store.NewJanitor(store.JanitorConfig{Grace: time.Minute}, in.st, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool {
		st, err := j.Sweep(ctx, time.Now().Add(2*time.Minute))
		return err == nil && st.Removed == 0 && st.Forgotten == 0 && objectKeys(t, rdb) <= in.st.Config().Shards
	})
	if n, _ := rdb.Exists(ctx, "dsm:o:"+k, "dsm:presence").Result(); n != 0 {
		t.Fatalf("%d of the key's count and presence left", n)
	}
}
