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

// TestOpRoundTrip: an op is acked, reaches a subscriber on another instance, and a
// reconnecting client catches up.
func TestOpRoundTrip(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	a := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{}, store.Config{}, nil)
	b := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{}, store.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	s1 := a.session(t, "alice")
	acks := make(chan dsmclient.Ack, 10)
	c1 := a.dial(t, dsmclient.Config{Token: s1.Token, OnAck: func(x dsmclient.Ack) { acks <- x }})
	if c1.Key() != s1.Client {
		t.Fatalf("key %q != %q", c1.Key(), s1.Client)
	}
	obj := "players/" + s1.Client + "/audio"
	o1, err := c1.Subscribe(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	// A second connection of the same page (same token) on instance b watches too.
	c2 := b.dial(t, dsmclient.Config{Token: s1.Token})
	o2, err := c2.Subscribe(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := o1.Do(store.Set("player_state", "connecting"), store.Set("service", "mmtel")); err != nil {
		t.Fatal(err)
	}
	if v, _ := o1.Get("player_state"); v != "connecting" {
		t.Fatalf("local apply: %q", v)
	}
	select {
	case ack := <-acks:
		if ack.Rev != 1 || ack.Seq != 1 {
			t.Fatalf("ack %+v", ack)
		}
	case <-ctx.Done():
		t.Fatal("no ack")
	}
	waitFor(t, ctx, func() bool { v, _ := o2.Get("service"); return v == "mmtel" && o2.Rev() == 1 })
	// Blind write of the own entry of the players index.
	if err := c1.Blind("players").Do(store.Set(obj, "audio")); err != nil {
		t.Fatal(err)
	}
	if err := c1.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	rd, err := a.st.Snapshot(ctx, "players")
	if err != nil || rd.Fields[obj] != "audio" {
		t.Fatalf("players index: %v %v", rd, err)
	}
	// Users are readable; a user object starts empty.
	if _, err := c1.Subscribe(ctx, "users/alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Subscribe(ctx, "players/someoneelse/audio"); err == nil {
		t.Fatal("subscribed to another client's player")
	}
}

func waitFor(t testing.TB, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached before the deadline")
		case <-time.After(2 * time.Millisecond):
		}
	}
}
