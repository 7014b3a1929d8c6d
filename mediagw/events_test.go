package mediagw

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ownerSink receives events both ways: the in-process callback and the signed POST.
type ownerSink struct {
	cb, http chan Event
	url      string
}

func newOwnerSink(t *testing.T) *ownerSink {
	s := &ownerSink{cb: make(chan Event, 16), http: make(chan Event, 16)}
	srv := httptest.NewServer(EventHandler(testSecret, func(ev Event) { s.http <- ev }))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func waitEvent(t *testing.T, ch chan Event, what string) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(deadline):
		t.Fatalf("no %s event", what)
		return Event{}
	}
}

func TestMediaTimeout(t *testing.T) {
	t.Parallel()
	sink := newOwnerSink(t)
	e := newEnv(t, func(c *Config) {
		// Long enough that a loaded machine gets from the termination's creation to the
		// WebSocket and the first packet within it (at 300 ms a run under the full suite
		// found the termination ended before its dial: 404).
		c.MediaTimeout = 1500 * time.Millisecond
		c.OnEvent = func(ev Event) { sink.cb <- ev }
	})
	ctx := context.Background()
	lt, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "as-1", CallID: "cid-1", Player: "players/k/audio", EventURL: sink.url})
	if err != nil {
		t.Fatal(err)
	}
	p := newPeer(t)
	mu, err := e.cl.AddRemote(ctx, lt.ID, p.remote())
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, mu.URL)
	// Media flowing keeps it alive: two timeouts' worth of packets every 50 ms.
	gw := c2addr(lt)
	for i := 0; i < 60; i++ {
		if _, err := p.rtp.WriteToUDP(rtpPacket(0, uint16(i), 0, 1, 160), gw); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case ev := <-sink.cb:
		t.Fatalf("ended while media flowed: %+v", ev)
	default:
	}
	// Then silence: ended, both notifications, ports and WebSocket closed.
	for _, ch := range []chan Event{sink.cb, sink.http} {
		ev := waitEvent(t, ch, "media_timeout")
		if ev.Type != EventMediaTimeout || ev.TerminationID != lt.ID || ev.Owner != "as-1" || ev.CallID != "cid-1" || ev.Player != "players/k/audio" {
			t.Errorf("event %+v", ev)
		}
	}
	if _, err := e.cl.Get(ctx, lt.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("get after timeout: %v", err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(deadline))
	var err2 error
	for err2 == nil {
		_, _, err2 = ws.ReadMessage() // the relayed packets, then the close
	}
	if err := err2; !strings.Contains(err.Error(), "1000") {
		t.Errorf("websocket after timeout: %v, want close 1000", err)
	}
}

func TestTimeoutSuspendedOnHold(t *testing.T) {
	t.Parallel()
	events := make(chan Event, 4)
	e := newEnv(t, func(c *Config) {
		c.MediaTimeout = 200 * time.Millisecond
		c.OnEvent = func(ev Event) { events <- ev }
	})
	p := newPeer(t)
	c := e.newCall(t, nil, false)
	hold := true
	r := p.remote()
	if _, err := e.cl.AddRemote(context.Background(), c.id, r); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Modify(context.Background(), c.id, ModifyRequest{Hold: &hold}); err != nil {
		t.Fatal(err)
	}
	// Five timeouts long on hold without media: still alive.
	time.Sleep(time.Second)
	if _, err := e.cl.Get(context.Background(), c.id); err != nil {
		t.Fatalf("held termination ended: %v", err)
	}
	hold = false
	if _, err := e.cl.Modify(context.Background(), c.id, ModifyRequest{Hold: &hold}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, events, "media_timeout after resume"); ev.Type != EventMediaTimeout {
		t.Errorf("event %+v", ev)
	}
}

func TestSetupTimeout(t *testing.T) {
	t.Parallel()
	events := make(chan Event, 4)
	e := newEnv(t, func(c *Config) {
		c.SetupTimeout = 200 * time.Millisecond
		c.OnEvent = func(ev Event) { events <- ev }
	})
	c := e.newCall(t, nil, false)
	ev := waitEvent(t, events, "setup_timeout")
	if ev.Type != EventSetupTimeout || ev.TerminationID != c.id {
		t.Errorf("event %+v", ev)
	}
}

func TestShutdownNotifies(t *testing.T) {
	t.Parallel()
	sink := newOwnerSink(t)
	e := newEnv(t, nil)
	lt, err := e.cl.AddLocal(context.Background(), AddLocalRequest{Owner: "o", EventURL: sink.url})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if ev := waitEvent(t, sink.http, "shutdown"); ev.Type != EventShutdown || ev.TerminationID != lt.ID {
		t.Errorf("event %+v", ev)
	}
	if _, err := e.cl.AddLocal(context.Background(), AddLocalRequest{Owner: "o"}); !isAPI(err, 503, ErrUnavailable) {
		t.Errorf("add after close: %v", err)
	}
}

func TestEventHandlerSignature(t *testing.T) {
	t.Parallel()
	got := make(chan Event, 1)
	h := EventHandler(testSecret, func(ev Event) { got <- ev })
	body := []byte(`{"type":"media_timeout","termination_id":"t-1","owner":"o","reason":"x","at":"2026-01-01T00:00:00Z"}`)
	now := time.Now()
	post := func(sig string, b []byte) int {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		if sig != "" {
			req.Header.Set(SignatureHeader, sig)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	cases := []struct {
		name   string
		sig    string
		body   []byte
		status int
	}{
		{"valid", SignEvent(testSecret, now, body), body, 204},
		{"missing", "", body, 401},
		{"wrong secret", SignEvent(strings.Repeat("q", 20), now, body), body, 401},
		{"tampered body", SignEvent(testSecret, now, body), bytes.Replace(body, []byte("t-1"), []byte("t-2"), 1), 401},
		{"replayed later", SignEvent(testSecret, now.Add(-10*time.Minute), body), body, 401},
		{"garbage header", "t=abc,v1=zz", body, 401},
		{"bad body", SignEvent(testSecret, now, []byte("{}")), []byte("{}"), 400},
	}
	for _, tc := range cases {
		if s := post(tc.sig, tc.body); s != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, s, tc.status)
		}
	}
	if ev := <-got; ev.TerminationID != "t-1" {
		t.Errorf("event %+v", ev)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	if w.Code != 405 {
		t.Errorf("GET: %d", w.Code)
	}
}
