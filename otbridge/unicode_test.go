package otbridge_test

import (
	"context"
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// TestStringsThatJSONCannotCarry: a lone UTF-16 surrogate escape (what JSON.stringify
// makes of a JavaScript string cut inside an emoji) is refused with a nack and writes
// nothing, where it was once acked and stored as U+FFFD while the writer kept what it sent;
// two field names \ud800 and \udc00 no longer collapse into one; a text frame of invalid
// UTF-8 closes the connection with 1007 (RFC 6455 8.1) and writes nothing.
func TestStringsThatJSONCannotCarry(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	in := startInstance(t, rdb, otbridge.Config{}, store.Config{}, nil)
	sess := in.session(t, "")
	own := "players/" + sess.Client + "/audio"
	nacked := map[string]string{
		"cut emoji value":        `[{"o":"set","f":"remote","v":"Bj\ud83d"}]`,
		"lone low surrogate":     `[{"o":"set","f":"remote","v":"\udc00x"}]`,
		"reversed pair":          `[{"o":"set","f":"remote","v":"\ude00\ud83d"}]`,
		"surrogate field names":  `[{"o":"set","f":"\ud800","v":"a"},{"o":"set","f":"\udc00","v":"b"}]`,
		"surrogate in expect":    `[{"o":"expect","f":"remote","v":"\uD83D"},{"o":"set","f":"a","v":"b"}]`,
		"high then escaped text": `[{"o":"set","f":"remote","v":"\ud83d\\ude00"}]`,
	}
	for name, ops := range nacked {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, in.url)
			c.hello(sess.Token)
			c.send(`{"t":"op","obj":"` + own + `","seq":1,"ops":` + ops + `}`)
			m := c.recv()
			if m["t"] != "nack" || m["code"] != otbridge.CodeBadMessage || m["seq"] != 1.0 {
				t.Fatalf("got %v, want a bad_message nack of seq 1", m)
			}
			c.usable()
		})
	}
	t.Run("invalid UTF-8 frame", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, in.url)
		c.hello(sess.Token)
		c.send("{\"t\":\"op\",\"obj\":\"" + own + "\",\"seq\":1,\"ops\":[{\"o\":\"set\",\"f\":\"remote\",\"v\":\"Bj\xf0\x9f\"}]}")
		for {
			_, err := c.next()
			if err == nil {
				t.Fatal("the connection answered an invalid UTF-8 frame")
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseInvalidFramePayloadData {
				t.Fatalf("connection ended with %v, want close 1007", err)
			}
			return
		}
	})
	t.Cleanup(func() {
		if n := objectKeys(t, rdb); n != 0 {
			t.Errorf("Redis holds %d object keys; refused strings must write nothing", n)
		}
	})
}

// TestUnicodeRoundTrip: strings at the edges of Unicode (emoji as a surrogate pair escape
// and as raw UTF-8, combining marks, NUL, 4-byte sequences, escaped and raw controls) are
// stored byte for byte and every replica, the writer's included, holds the same.
func TestUnicodeRoundTrip(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	in := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{Policy: otbridge.AllowAll{}}, store.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const obj = "shared/unicode"
	reader := in.dial(t, dsmclient.Config{Token: in.session(t, "").Token})
	ro, err := reader.Subscribe(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	// The raw writer sends escapes as a browser's JSON.stringify would.
	c := dialRaw(t, in.url)
	c.hello(in.session(t, "").Token)
	c.send(`{"t":"op","obj":"` + obj + `","seq":1,"ops":[` +
		`{"o":"set","f":"pair","v":"Bj\ud83d\ude00rk"},` +
		`{"o":"set","f":"raw","v":"Bj😀rk"},` +
		`{"o":"set","f":"combining","v":"e\u0301"},` +
		`{"o":"set","f":"nul","v":"a\u0000b"},` +
		`{"o":"set","f":"four","v":"𐍈\uD800\uDF48"},` +
		`{"o":"set","f":"ctl","v":"\t\n\u001f"},` +
		`{"o":"set","f":"😀","v":"emoji field"}]}`)
	if m := c.recv(); m["t"] != "ack" {
		t.Fatalf("got %v", m)
	}
	want := map[string]string{"pair": "Bj😀rk", "raw": "Bj😀rk", "combining": "e\u0301", "nul": "a\x00b",
		"four": "𐍈𐍈", "ctl": "\t\n\x1f", "😀": "emoji field"}
	waitFor(t, ctx, func() bool { return ro.Rev() == 1 })
	if got := ro.Fields(); !maps.Equal(got, want) {
		t.Fatalf("replica holds %q, want %q", got, want)
	}
	snap, err := in.st.Snapshot(ctx, obj)
	if err != nil || !maps.Equal(snap.Fields, want) {
		t.Fatalf("Redis holds %q (%v), want %q", snap.Fields, err, want)
	}
	// A Go writer's strings come back unchanged as well, and invalid UTF-8 is refused
	// locally before anything is sent.
	w := in.dial(t, dsmclient.Config{Token: in.session(t, "").Token})
	wo, err := w.Subscribe(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := wo.Do(store.Set("nul", "\x00\x00")); err != nil {
		t.Fatal(err)
	}
	if err := wo.Do(store.Set("bad", "Bj\xf0\x9f")); !errors.Is(err, store.ErrBadOp) {
		t.Fatalf("invalid UTF-8 from the Go client: %v", err)
	}
	if err := w.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, func() bool { return ro.Rev() == 2 })
	if v, _ := ro.Get("nul"); v != "\x00\x00" {
		t.Fatalf("NUL value became %q", v)
	}
}
