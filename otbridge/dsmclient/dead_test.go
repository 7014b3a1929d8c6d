package dsmclient

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/otbridge"
)

// A connection on which nothing arrives any more (a gateway whose host vanished: no
// reset, no close) is dropped after DeadAfter and the client connects again; a live one
// answers the client's pings and is kept.
func TestHalfOpenConnectionIsDropped(t *testing.T) {
	t.Parallel()
	var conns, pings atomic.Int32
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		n := conns.Add(1)
		if _, _, err := ws.ReadMessage(); err != nil { // hello
			return
		}
		welcome, _ := json.Marshal(otbridge.Welcome{T: otbridge.TypeWelcome, Client: "k", Instance: "i"})
		if ws.WriteMessage(websocket.TextMessage, welcome) != nil {
			return
		}
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if n == 1 {
				continue // the first connection goes silent
			}
			var m map[string]string
			if json.Unmarshal(b, &m) == nil && m["t"] == otbridge.TypePing {
				pings.Add(1)
				pong, _ := json.Marshal(map[string]string{"t": otbridge.TypePong, "id": m["id"]})
				_ = ws.WriteMessage(websocket.TextMessage, pong)
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Token: "t",
		// DeadAfter far above a ping's round trip even on a loaded machine: the test is
		// about a silent connection, not a slow one.
		PingInterval: 50 * time.Millisecond, DeadAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for conns.Load() < 2 || pings.Load() < 60 {
		if ctx.Err() != nil {
			t.Fatalf("connections %d, pings answered %d", conns.Load(), pings.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Answered pings keep the second connection: 60 pings are three seconds, longer
	// than DeadAfter.
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections; a connection that answers pings was dropped", n)
	}
}

// Close right after Dial returns: the reader must end even though the connection lives
// on (it once blocked forever when Close found no link yet).
func TestCloseRightAfterDial(t *testing.T) {
	t.Parallel()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		if _, _, err := ws.ReadMessage(); err != nil {
			return
		}
		welcome, _ := json.Marshal(otbridge.Welcome{T: otbridge.TypeWelcome, Client: "k", Instance: "i"})
		_ = ws.WriteMessage(websocket.TextMessage, welcome)
		for { // live, silent, never closing first
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	for range 50 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), Token: "t"})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close right after Dial did not return")
		}
	}
}
