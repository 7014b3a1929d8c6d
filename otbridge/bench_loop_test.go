package otbridge_test

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/proc"
	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// BenchmarkClosedLoop is dsmbench's workload in miniature, for benchstat before and after
// a change: 20 clients in groups of 10, each subscribed to its own object and its group's
// hot object, each with one op outstanding (a 32-byte set of one of its two objects), so
// every op is committed and fanned out to up to 10 connections. ns/op is wall time per
// acknowledged op with the clients in the same process; cpu_µs/op is this process's CPU
// (gateway and clients, not Redis) per op, the figure to compare on a busy machine;
// allocs/op counts the gateway's and the clients' allocations together; redis_µs/op is
// the Redis server's CPU per op.
func BenchmarkClosedLoop(b *testing.B) {
	const clients, group = 20, 10
	r := testpeer.StartRedis(b, testpeer.RedisOptions{})
	in := startInstance(b, newRedisClient(b, r.Addr), otbridge.Config{OpsPerSecond: 1e9, Policy: otbridge.AllowAll{}}, store.Config{}, nil)
	type loopClient struct {
		r        *raw
		own, hot string
	}
	cs := make([]loopClient, clients)
	for i := range cs {
		c := loopClient{r: dialRaw(b, in.url),
			own: "bench/loop/p" + strconv.Itoa(i), hot: "bench/loop/hot" + strconv.Itoa(i/group)}
		c.r.hello(in.session(b, "").Token) // a key each: seqs are per writer and object
		for _, obj := range []string{c.own, c.hot} {
			c.r.send(`{"t":"sub","obj":"` + obj + `"}`)
			for m := c.r.recv(); m["t"] != "snap"; m = c.r.recv() {
			}
		}
		cs[i] = c
	}
	var left atomic.Int64
	left.Store(int64(b.N))
	value := `"0123456789abcdef0123456789abcdef"`
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	rcpu0, err := proc.CPU(r.PID)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	for i := range cs {
		wg.Add(1)
		go func(c loopClient, i int) {
			defer wg.Done()
			_ = c.r.ws.SetReadDeadline(time.Time{}) // raw's 10 s deadline is for tests
			for seq := 1; left.Add(-1) >= 0; seq++ {
				obj := c.own
				if seq%2 == 0 {
					obj = c.hot
				}
				field := strconv.Itoa(seq % 8)
				msg := `{"t":"op","obj":"` + obj + `","seq":` + strconv.Itoa(seq) + `,"ops":[{"o":"set","f":"f` + field + `","v":` + value + `}]}`
				if err := c.r.ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					b.Error(err)
					return
				}
				want := []byte(`"t":"ack","obj":"` + obj + `","seq":` + strconv.Itoa(seq) + `,`)
				for {
					_, p, err := c.r.ws.ReadMessage()
					if err != nil {
						b.Error(err)
						return
					}
					if bytes.Contains(p, want) {
						break
					}
					if bytes.Contains(p, []byte(`"t":"nack"`)) || bytes.Contains(p, []byte(`"t":"error"`)) {
						b.Errorf("refused: %s", p)
						return
					}
				}
			}
		}(cs[i], i)
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	// CPU time is what a loaded machine does not distort: wall time is shared with others.
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu_µs/op")
	if rcpu1, err := proc.CPU(r.PID); err == nil {
		b.ReportMetric(float64((rcpu1-rcpu0).Microseconds())/float64(b.N), "redis_µs/op")
	}
}

// cpuTime returns the user and system CPU time this process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
