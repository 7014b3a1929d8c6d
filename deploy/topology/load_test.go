package topology

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// dsmLoad is DSM traffic through the load balancer kept up while a fault happens: each
// writer has its own session and object (players/<client>/topo/load, which call control
// leaves alone: a player object has one segment after the client), one op in flight at a
// time, and a subscriber on another connection of the same session. The clients
// reconnect through nginx by themselves when their gateway goes away, resend what was
// not acknowledged and resynchronise (dsmclient, as the page's dsm.js does).
type dsmLoad struct {
	writers []*loadWriter
	stop    chan struct{}
	wg      sync.WaitGroup
}

// loadWriter is one writer of a dsmLoad and its subscriber.
type loadWriter struct {
	obj    string
	token  string
	wc, sc *dsmclient.Client
	wo, so *dsmclient.Object
	dials  atomic.Int32 // (re)connects of both clients
	ack    chan struct{}

	mu    sync.Mutex // guards acked and errs
	acked []int      // op numbers acknowledged, in order
	errs  []string
}

// loadPause is the pause between a writer's ops: the load is there to be cut by faults,
// not to saturate the machine whose timing the faults' tests report.
const loadPause = 20 * time.Millisecond

// startDSMLoad connects n writers and their subscribers through lb and starts writing.
func startDSMLoad(t *testing.T, lb string, n int) *dsmLoad {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := &dsmLoad{stop: make(chan struct{})}
	// Sessions first, then the connections: nginx hands requests out in turn, and a
	// session request between each writer's two connections would land every connection
	// on the same two of three gateways.
	sessions := make([]otbridge.Session, n)
	for i := range sessions {
		sessions[i] = session(t, lb)
	}
	for _, sess := range sessions {
		w := &loadWriter{obj: "players/" + sess.Client + "/topo/load", token: sess.Token, ack: make(chan struct{}, 1)}
		cfg := func(hooks bool) dsmclient.Config {
			c := dsmclient.Config{URL: "ws" + strings.TrimPrefix(lb, "http") + "/dsm",
				TokenFunc:    func(context.Context) (string, error) { w.dials.Add(1); return sess.Token, nil },
				PingInterval: testPing, DeadAfter: testDeadAfter}
			if hooks {
				c.OnAck = func(dsmclient.Ack) { wakeOne(w.ack) }
				c.OnNack = func(n dsmclient.Nack) {
					w.mu.Lock()
					w.errs = append(w.errs, "nack "+n.Code+": "+n.Msg)
					w.mu.Unlock()
					wakeOne(w.ack)
				}
			}
			return c
		}
		for i, hooks := range []bool{false, true} { // the subscriber first: it sees every op
			cl, err := dsmclient.Dial(ctx, cfg(hooks))
			if err != nil {
				t.Fatalf("load: dial: %v", err)
			}
			t.Cleanup(func() { cl.Close() })
			o, err := cl.Subscribe(ctx, w.obj)
			if err != nil {
				t.Fatalf("load: subscribe: %v", err)
			}
			if i == 0 {
				w.sc, w.so = cl, o
			} else {
				w.wc, w.wo = cl, o
			}
		}
		l.writers = append(l.writers, w)
	}
	for _, w := range l.writers {
		l.wg.Go(func() { w.run(l.stop) })
	}
	return l
}

func wakeOne(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// loadFields is how many fields a writer cycles through: op n writes n to field
// f<n mod loadFields>, below the object field limit (256), so the final object shows, for
// every op acknowledged, that op or a later one.
const loadFields = 200

// run writes op after op, each its number into its field.
func (w *loadWriter) run(stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(loadPause):
		}
		w.mu.Lock()
		errsBefore := len(w.errs)
		w.mu.Unlock()
		if err := w.wo.Do(store.Set("n", fmt.Sprint(n)), store.Set(loadField(n), fmt.Sprint(n))); err != nil {
			w.mu.Lock()
			w.errs = append(w.errs, err.Error())
			w.mu.Unlock()
			return
		}
		// Acknowledged, or refused: either way the op is answered. A fault makes the
		// answer wait for a reconnect and the resend.
		for w.wo.Pending() {
			select {
			case <-w.ack:
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		w.mu.Lock()
		if len(w.errs) == errsBefore { // not refused
			w.acked = append(w.acked, n)
		}
		w.mu.Unlock()
	}
}

func loadField(n int) string { return fmt.Sprintf("f%d", n%loadFields) }

// on returns the load's clients whose connection is on instance now.
func (l *dsmLoad) on(instance string) []*dsmclient.Client {
	var out []*dsmclient.Client
	for _, w := range l.writers {
		for _, c := range []*dsmclient.Client{w.wc, w.sc} {
			if c.Welcome().Instance == instance {
				out = append(out, c)
			}
		}
	}
	return out
}

// stopAndCheck stops writing, waits for the ops in flight, and checks that no
// acknowledged op was lost: every one is in the object as a fresh reader gets it, and
// every subscriber converged on it. It returns the ops acknowledged and the reconnects.
func (l *dsmLoad) stopAndCheck(t *testing.T, lb string) (acked, reconnects int) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for _, w := range l.writers {
		for w.wo.Pending() {
			if time.Now().After(deadline) {
				t.Fatalf("load %s: ops still unacknowledged", w.obj)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, w := range l.writers {
		w.mu.Lock()
		ackedOps, errs := append([]int(nil), w.acked...), w.errs
		w.mu.Unlock()
		if len(errs) > 0 {
			t.Errorf("load %s: %d errors, first: %s", w.obj, len(errs), errs[0])
		}
		want, rev := w.wo.Server()
		for w.so.Rev() < rev {
			if time.Now().After(deadline) {
				t.Fatalf("load %s: subscriber at rev %d, writer at %d", w.obj, w.so.Rev(), rev)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got, _ := w.so.Server(); !maps.Equal(got, want) {
			t.Errorf("load %s: subscriber holds %d fields, writer %d", w.obj, len(got), len(want))
		}
		// A reader that was never part of the fault: what Redis holds.
		fresh := freshRead(t, ctx, lb, w)
		lost := 0
		for _, n := range ackedOps {
			if v, err := strconv.Atoi(fresh[loadField(n)]); err != nil || v < n {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("load %s: %d of %d acknowledged ops lost", w.obj, lost, len(ackedOps))
		}
		acked += len(ackedOps)
		reconnects += int(w.dials.Load()) - 2
	}
	return acked, reconnects
}

// freshRead subscribes to a writer's object on a new connection of its session, through
// the load balancer: what any reader gets now.
func freshRead(t *testing.T, ctx context.Context, lb string, w *loadWriter) map[string]string {
	t.Helper()
	cl, err := dsmclient.Dial(ctx, dsmclient.Config{URL: "ws" + strings.TrimPrefix(lb, "http") + "/dsm", Token: w.token})
	if err != nil {
		t.Fatalf("load %s: fresh reader: %v", w.obj, err)
	}
	defer cl.Close()
	o, err := cl.Subscribe(ctx, w.obj)
	if err != nil {
		t.Fatalf("load %s: fresh reader: %v", w.obj, err)
	}
	f, _ := o.Server()
	return f
}
