package otbridge_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// TestSlowConsumer: a subscriber that stops reading is cut off with 4008 while a writer on
// the same object keeps getting its acks (which travel the same feed fan-out): were the
// fan-out ever blocked by the stuck socket, the writer would stall and the test time out.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	in := startInstance(t, newRedisClient(t, r.Addr),
		otbridge.Config{Policy: otbridge.AllowAll{}, OpsPerSecond: 1e6, SendQueue: 16}, store.Config{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const obj = "shared/hot"

	// The slow consumer subscribes, then reads nothing. (Its socket buffers are left at
	// their defaults: a receive buffer shrunk after connect makes loopback TCP crawl through
	// retransmission backoff, and the close would then never arrive.)
	ws, _, err := websocket.DefaultDialer.Dial(in.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	slow := &raw{t: t, ws: ws}
	slow.hello(in.session(t, "").Token)
	slow.send(`{"t":"sub","obj":"` + obj + `"}`)
	if m := slow.recv(); m["t"] != "snap" {
		t.Fatalf("got %v", m)
	}

	acks := make(chan dsmclient.Ack, 1)
	w := in.dial(t, dsmclient.Config{Token: in.session(t, "").Token, OnAck: func(a dsmclient.Ack) { acks <- a }})
	o, err := w.Subscribe(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("v", 4000)
	start := time.Now()
	i := 0
	for ; in.metric(t, "dsm_slow_consumer_cutoffs_total") == 0 || i < 200; i++ {
		if err := o.Do(store.Set("f", big[:4000-i%10])); err != nil {
			t.Fatal(err)
		}
		select {
		case <-acks:
		case <-ctx.Done():
			t.Fatalf("writer stalled after %d ops", i)
		}
	}
	t.Logf("%d ops acknowledged in %v while the consumer was stuck", i, time.Since(start))
	// The slow consumer now reads what was buffered, then the close.
	_ = ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue
		}
		// The close frame waits for room in the socket (up to WriteTimeout) and TCP is
		// closed only after the client's answer, so the client sees why it was cut off.
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != otbridge.CloseSlowConsumer {
			t.Fatalf("connection ended with %v, want close %d", err, otbridge.CloseSlowConsumer)
		}
		t.Logf("slow consumer saw: %v", err)
		break
	}
	if n := in.metric(t, "dsm_slow_consumer_cutoffs_total"); n != 1 {
		t.Fatalf("cut-offs %v, want 1", n)
	}
}
