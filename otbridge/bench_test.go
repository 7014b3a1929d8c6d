package otbridge_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// BenchmarkOpRoundTrip measures one op through the bridge (client Do → commit → ordered
// ack through the feed) and, in the same run, the baseline of a bare store.Commit round
// trip on the same Redis; it reports the ratio as x_commit.
func BenchmarkOpRoundTrip(b *testing.B) {
	r := testpeer.StartRedis(b, testpeer.RedisOptions{})
	in := startInstance(b, newRedisClient(b, r.Addr), otbridge.Config{OpsPerSecond: 1e9}, store.Config{}, nil)
	ctx := context.Background()

	const baseN = 3000
	start := time.Now()
	for i := 0; i < baseN; i++ {
		if _, err := in.st.Commit(ctx, store.Commit{Obj: "bench/base", Client: "b", Seq: int64(i + 1), Base: -1,
			Ops: []store.Op{store.Set("f", strconv.Itoa(i))}}); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Since(start) / baseN

	sess := in.session(b, "")
	acks := make(chan struct{}, 1)
	c := in.dial(b, dsmclient.Config{Token: sess.Token, OnAck: func(dsmclient.Ack) { acks <- struct{}{} }})
	o, err := c.Subscribe(ctx, "players/"+sess.Client+"/audio")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := o.Do(store.Set("f", "0123456789abcdef0123456789abcdef")); err != nil {
			b.Fatal(err)
		}
		<-acks
	}
	b.StopTimer()
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(base.Nanoseconds()), "commit_ns")
	b.ReportMetric(float64(per)/float64(base), "x_commit")
}

// BenchmarkIdleConnMemory opens idle subscribed connections and reports the gateway-side
// heap and stack per connection against the 20 KiB target. Client and server share the
// process, so the same number of client connections to a server that merely holds them
// is measured too and subtracted. Run it with -benchtime 1x.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 1000
	r := testpeer.StartRedis(b, testpeer.RedisOptions{})
	in := startInstance(b, newRedisClient(b, r.Addr), otbridge.Config{OpsPerSecond: 1e9}, store.Config{}, nil)
	sess := in.session(b, "")
	mem := func() float64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc + ms.StackInuse)
	}
	// Baseline: client connections to a server that only keeps the upgraded socket.
	var held []*websocket.Conn
	var hmu sync.Mutex
	up := websocket.Upgrader{ReadBufferSize: 16, WriteBufferSize: 16}
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err == nil {
			hmu.Lock()
			held = append(held, ws)
			hmu.Unlock()
		}
	}))
	defer bare.Close()
	for i := 0; i < b.N; i++ {
		m0 := mem()
		clients := make([]*websocket.Conn, n)
		for j := range clients {
			ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(bare.URL, "http"), nil)
			if err != nil {
				b.Fatal(err)
			}
			clients[j] = ws
		}
		clientOnly := mem() - m0
		for _, c := range clients {
			c.Close()
		}
		hmu.Lock()
		for _, ws := range held {
			ws.Close()
		}
		held = nil
		hmu.Unlock()

		m1 := mem()
		conns := make([]*raw, n)
		for j := range conns {
			conns[j] = dialRaw(b, in.url)
			conns[j].hello(sess.Token)
			conns[j].send(`{"t":"sub","obj":"players/` + sess.Client + `/audio"}`)
			conns[j].recv()
		}
		both := mem() - m1
		for _, c := range conns {
			c.ws.Close()
		}
		b.ReportMetric(clientOnly/n, "client_B/conn")
		b.ReportMetric((both-clientOnly)/n, "gateway_B/conn")
		b.ReportMetric((both-clientOnly)/n/20480, "x_20KiB")
	}
}
