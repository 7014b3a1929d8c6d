package otbridge_test

import (
	"errors"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// An instance whose change feed cannot read (its Redis frozen here; cut off in a
// deployment) closes its connections with 1011 and refuses new ones, so clients reconnect
// to an instance whose feed works; once the feed reads again it accepts connections
// again. A read that stays unanswered past its block closes them at once, without
// waiting for the read to fail and then for FeedDownClose: with an hour of it, the
// connections still close.
func TestFeedDownClosesConnections(t *testing.T) {
	t.Parallel()
	for name, downClose := range map[string]time.Duration{"failing": 300 * time.Millisecond, "stalled": time.Hour} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			feedDownCloses(t, downClose)
		})
	}
}

func feedDownCloses(t *testing.T, downClose time.Duration) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	in := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{FeedDownClose: downClose}, store.Config{}, nil)
	sess := in.session(t, "")
	ws, _, err := websocket.DefaultDialer.Dial(in.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]string{"t": "hello", "token": sess.Token}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil { // welcome
		t.Fatal(err)
	}
	if err := syscall.Kill(r.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = syscall.Kill(r.PID, syscall.SIGCONT)
		}
	}
	defer thaw()
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second)) // a failure deadline
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != otbridge.CloseUnavailable {
			t.Fatalf("connection ended with %v, want close 1011", err)
		}
		break
	}
	res, err := http.Get(strings.Replace(in.url, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new connection while the feed is down: %s, want 503", res.Status)
	}
	thaw()
	// Once the bridge says it is ready again (what /readyz reports, and what a load
	// balancer goes by), it accepts connections: it once refused them until its next look
	// at the feed's health, a quarter of a second later or more under load.
	deadline := time.Now().Add(30 * time.Second)
	for !in.b.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the bridge is not ready again after the feed came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ws2, res2, err := websocket.DefaultDialer.Dial(in.url, nil)
	if err != nil {
		status := ""
		if res2 != nil {
			status = res2.Status
		}
		t.Fatalf("a connection once the bridge is ready again: %v %s", err, status)
	}
	ws2.Close()
}
