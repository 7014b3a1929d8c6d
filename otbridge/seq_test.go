package otbridge_test

import (
	"context"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// TestLargeSeq: a seq of 10^14 and the next one are acked and applied; the script once
// stored the first as "1e+14", failed on the second, and the gateway closed with 1011,
// which a client following the doc met again after every reconnect. A seq or base beyond
// 2^53-1 is refused without closing.
func TestLargeSeq(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	in := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{}, store.Config{}, nil)
	sess := in.session(t, "")
	own := "players/" + sess.Client + "/audio"
	c := dialRaw(t, in.url)
	c.hello(sess.Token)
	for i, seq := range []string{"100000000000000", "100000000000001", "9007199254740991"} {
		c.send(`{"t":"op","obj":"` + own + `","seq":` + seq + `,"ops":[{"o":"set","f":"remote","v":"` + seq + `"}]}`)
		if m := c.recv(); m["t"] != "ack" || m["rev"] != float64(i+1) {
			t.Fatalf("seq %s: got %v", seq, m)
		}
	}
	for name, msg := range map[string]string{
		"seq 2^53":       `{"t":"op","obj":"` + own + `","seq":9007199254740992,"ops":[{"o":"set","f":"remote","v":"x"}]}`,
		"seq 2^63":       `{"t":"op","obj":"` + own + `","seq":9223372036854775808,"ops":[{"o":"set","f":"remote","v":"x"}]}`,
		"fractional seq": `{"t":"op","obj":"` + own + `","seq":1.5,"ops":[{"o":"set","f":"remote","v":"x"}]}`,
		"base 2^53":      `{"t":"op","obj":"` + own + `","base":9007199254740992,"seq":9,"ops":[{"o":"set","f":"remote","v":"x"}]}`,
		"since 2^53":     `{"t":"sub","obj":"` + own + `","since":9007199254740992}`,
	} {
		c.send(msg)
		if m := c.recv(); m["code"] != otbridge.CodeBadMessage {
			t.Fatalf("%s: got %v, want bad_message", name, m)
		}
	}
	c.usable()
	if snap, _ := in.st.Snapshot(context.Background(), own); snap.Rev != 3 || snap.Fields["remote"] != "9007199254740991" {
		t.Fatalf("Redis: %+v", snap)
	}
}

// TestReloadReusesToken: a page that reloads and reuses its token (its client key) starts
// numbering at seq 1 again. Its writes must be applied, not answered with the revision of
// the old page's op of the same seq and dropped.
func TestReloadReusesToken(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	in := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{}, store.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess := in.session(t, "")
	own := "players/" + sess.Client + "/audio"

	t.Run("raw", func(t *testing.T) {
		first := dialRaw(t, in.url)
		first.helloEpoch(sess.Token, "load-1")
		first.send(`{"t":"op","obj":"` + own + `","seq":1,"ops":[{"o":"set","f":"remote","v":"old"}]}`)
		if m := first.recv(); m["t"] != "ack" {
			t.Fatalf("got %v", m)
		}
		first.ws.Close()
		// The reloaded page: same token, a new epoch, seq 1 again; its answer is lost once
		// (a new connection of the same page resends).
		for i := 0; i < 2; i++ {
			again := dialRaw(t, in.url)
			again.helloEpoch(sess.Token, "load-2")
			again.send(`{"t":"op","obj":"` + own + `","seq":1,"ops":[{"o":"set","f":"remote","v":"new"}]}`)
			m := again.recv()
			if m["t"] != "nack" || m["code"] != otbridge.CodeSeqReused || m["last"] != 1.0 {
				t.Fatalf("got %v, want a seq_reused nack naming last 1", m)
			}
			again.ws.Close()
		}
		again := dialRaw(t, in.url)
		again.helloEpoch(sess.Token, "load-2")
		again.send(`{"t":"op","obj":"` + own + `","seq":2,"ops":[{"o":"set","f":"remote","v":"new"}]}`)
		if m := again.recv(); m["t"] != "ack" || m["rev"] != 2.0 {
			t.Fatalf("got %v", m)
		}
		// A resend of the same page is still answered by deduplication.
		again.send(`{"t":"op","obj":"` + own + `","seq":2,"ops":[{"o":"set","f":"remote","v":"other"}]}`)
		if m := again.recv(); m["t"] != "ack" || m["rev"] != 2.0 {
			t.Fatalf("resend: got %v", m)
		}
	})
	t.Run("dsmclient", func(t *testing.T) {
		for i, v := range []string{"page 1", "page 2", "page 3"} {
			c := in.dial(t, dsmclient.Config{Token: sess.Token})
			o, err := c.Subscribe(ctx, own)
			if err != nil {
				t.Fatal(err)
			}
			// A blind write too: the players index entry, written again by every load.
			idx := c.Blind("players")
			if err := idx.Do(store.Set(own, "audio")); err != nil {
				t.Fatal(err)
			}
			if err := o.Do(store.Set("remote", v)); err != nil {
				t.Fatal(err)
			}
			if err := c.Idle(ctx); err != nil {
				t.Fatal(err)
			}
			snap, _ := in.st.Snapshot(ctx, own)
			if snap.Fields["remote"] != v {
				t.Fatalf("load %d: Redis holds %q, want %q", i+1, snap.Fields["remote"], v)
			}
			if got, _ := o.Get("remote"); got != v {
				t.Fatalf("load %d: the replica holds %q", i+1, got)
			}
			c.Close()
		}
	})
}

// TestScriptFailureIsANack: when the commit script fails inside Redis (here on a meta
// hash broken by hand), the op is refused with internal and the connection stays; closing
// with 1011 would make the client resend the same op forever.
func TestScriptFailureIsANack(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{}, store.Config{}, nil)
	sess := in.session(t, "")
	own := "players/" + sess.Client + "/audio"
	if err := rdb.HSet(context.Background(), keyOf(own, "m", in.st.Config().Shards), "rev", "broken").Err(); err != nil {
		t.Fatal(err)
	}
	c := dialRaw(t, in.url)
	c.hello(sess.Token)
	c.send(`{"t":"op","obj":"` + own + `","seq":1,"ops":[{"o":"set","f":"remote","v":"x"}]}`)
	if m := c.recv(); m["t"] != "nack" || m["code"] != otbridge.CodeInternal {
		t.Fatalf("got %v, want an internal nack", m)
	}
	c.usable()
}
