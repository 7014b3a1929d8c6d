package otbridge_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// TestOutsideWriteResync: a plain HSET on a subscribed object reaches the subscriber as a
// resync, with Redis started without keyspace events and the store enabling them.
func TestOutsideWriteResync(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: ""})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{}, store.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := in.st.EnableNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	if cfg, _ := rdb.ConfigGet(ctx, "notify-keyspace-events").Result(); !strings.ContainsRune(cfg["notify-keyspace-events"], 'h') {
		t.Fatalf("notifications not enabled: %v", cfg)
	}
	sess := in.session(t, "")
	resets := make(chan dsmclient.Event, 4)
	c := in.dial(t, dsmclient.Config{Token: sess.Token})
	obj := "players/" + sess.Client + "/audio"
	o, err := c.Subscribe(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	o.OnChange(func(e dsmclient.Event) {
		if e.Reset {
			resets <- e
		}
	})
	if err := o.Do(store.Set("player_state", "connected")); err != nil {
		t.Fatal(err)
	}
	if err := c.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, keyOf(obj, "f", in.st.Config().Shards), "player_state", "failed").Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-resets:
		if v, _ := o.Get("player_state"); v != "failed" || e.Rev != 2 {
			t.Fatalf("after resync: %q at rev %d", v, e.Rev)
		}
	case <-ctx.Done():
		t.Fatal("the outside write never reached the subscriber")
	}
	if n := in.metric(t, "dsm_resyncs_total"); n != 1 {
		t.Fatalf("resyncs metric %v", n)
	}
}

// TestConfigDenied: where CONFIG is refused, enabling notifications logs one warning and
// the bridge keeps working from the change feed.
func TestConfigDenied(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{DenyConfig: true})
	rdb := newRedisClient(t, r.Addr)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	in := startInstance(t, rdb, otbridge.Config{}, store.Config{}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := in.st.EnableNotifications(ctx); err != nil {
		t.Fatal(err)
	}
	sess := in.session(t, "")
	acks := make(chan dsmclient.Ack, 1)
	c := in.dial(t, dsmclient.Config{Token: sess.Token, OnAck: func(a dsmclient.Ack) { acks <- a }})
	o, err := c.Subscribe(ctx, "players/"+sess.Client+"/audio")
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Do(store.Set("player_state", "connecting")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-acks:
	case <-ctx.Done():
		t.Fatal("no ack without CONFIG")
	}
	if n := strings.Count(logs.String(), "cannot enable keyspace notifications"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
}

// TestOutsideWriteUnwatched: a write made outside the commit path while nobody watches the
// object (no subscriber, so no reconcile) reaches a client that resumes with since=<rev>:
// it gets the new fields, and so does a fresh subscriber, and after the next commit both
// agree with Redis. A resuming client once got an empty catch-up and kept the old value.
func TestOutsideWriteUnwatched(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{}, store.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sess := in.session(t, "")
	obj := "players/" + sess.Client + "/audio"
	c := dialRaw(t, in.url)
	c.hello(sess.Token)
	c.send(`{"t":"sub","obj":"` + obj + `"}`)
	if m := c.recv(); m["t"] != "snap" {
		t.Fatalf("got %v", m)
	}
	c.send(`{"t":"op","obj":"` + obj + `","base":0,"seq":1,"ops":[{"o":"set","f":"player_state","v":"connecting"}]}`)
	if m := c.recv(); m["t"] != "ack" || m["rev"] != 1.0 {
		t.Fatalf("got %v", m)
	}
	c.send(`{"t":"unsub","obj":"` + obj + `"}`)
	if m := c.recv(); m["t"] != "unsubbed" {
		t.Fatalf("got %v", m)
	}
	if err := rdb.HSet(ctx, keyOf(obj, "f", in.st.Config().Shards), "player_state", "failed").Err(); err != nil {
		t.Fatal(err)
	}
	c.send(`{"t":"sub","obj":"` + obj + `","since":1}`)
	m := c.recv()
	fields, _ := m["fields"].(map[string]any)
	if m["t"] != "snap" || m["rev"] != 2.0 || fields["player_state"] != "failed" {
		t.Fatalf("resume after an outside write: got %v, want a snap at rev 2 with player_state failed", m)
	}
}
