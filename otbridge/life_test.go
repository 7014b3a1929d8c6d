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

// TestObjectLife runs page sessions through the bridge with a short grace period: a page
// that closed for good loses its player object and its players index entry (and a reader
// of that object starts over from revision 0 on a new connection); a page still connected,
// and a page that reloaded with its token at once, keep everything, although their writes
// are older than the grace period by then.
func TestObjectLife(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{PresenceInterval: 100 * time.Millisecond}, store.Config{}, nil)
	watcher := startInstance(t, rdb, otbridge.Config{Policy: otbridge.AllowAll{}}, store.Config{}, nil)
	j, err := store.NewJanitor(store.JanitorConfig{Grace: 2 * time.Second}, in.st, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	page := func(tok string) (*dsmclient.Client, string) {
		c := in.dial(t, dsmclient.Config{Token: tok})
		own := "players/" + c.Key() + "/audio"
		o, err := c.Subscribe(ctx, own)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Do(store.Set("player_state", "connecting")); err != nil {
			t.Fatal(err)
		}
		if err := c.Blind("players").Do(store.Set(own, "audio")); err != nil {
			t.Fatal(err)
		}
		if err := c.Idle(ctx); err != nil {
			t.Fatal(err)
		}
		return c, own
	}
	gone, goneObj := page(in.session(t, "").Token)
	_, liveObj := page(in.session(t, "").Token)
	reloadSess := in.session(t, "")
	reload, reloadObj := page(reloadSess.Token)

	// Another process reads the gone page's object (only an AllowAll load test can).
	reader := watcher.dial(t, dsmclient.Config{Token: watcher.session(t, "").Token})
	ro, err := reader.Subscribe(ctx, goneObj)
	if err != nil {
		t.Fatal(err)
	}
	if ro.Rev() != 1 {
		t.Fatalf("reader at rev %d", ro.Rev())
	}

	gone.Close()
	reload.Close()
	page(reloadSess.Token) // the reload: same token, back at once

	// Sweep until the gone page's object is removed, and on for twice the grace period
	// after the last write of the other pages, so that every sweep in between had their
	// entries old enough to judge: none of those sweeps may remove them.
	lastWrite := time.Now()
	removed := 0
	for removed == 0 || time.Since(lastWrite) < 4*time.Second {
		s, err := j.Sweep(ctx, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if removed += s.Removed; removed > 1 {
			t.Fatalf("sweeps removed %d objects; only the gone page's may go", removed)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the gone page's object was never removed")
		case <-time.After(200 * time.Millisecond):
		}
	}
	if rd, _ := in.st.Snapshot(ctx, goneObj); rd.Rev != 0 || len(rd.Fields) != 0 {
		t.Fatalf("gone page's object: %+v", rd)
	}
	idx, _ := in.st.Snapshot(ctx, "players")
	if _, ok := idx.Fields[goneObj]; ok || idx.Fields[liveObj] != "audio" || idx.Fields[reloadObj] != "audio" {
		t.Fatalf("players index: %v", idx.Fields)
	}
	for _, obj := range []string{liveObj, reloadObj} {
		if rd, _ := in.st.Snapshot(ctx, obj); rd.Fields["player_state"] != "connecting" {
			t.Fatalf("%s: %+v", obj, rd)
		}
	}
	// The reader was closed with 4010, reconnected and resubscribed: it now holds the
	// object as it is, revision 0 and no fields.
	waitFor(t, ctx, func() bool { return ro.Rev() == 0 && len(ro.Fields()) == 0 })
}
