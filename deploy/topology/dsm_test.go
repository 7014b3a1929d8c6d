package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"

	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// The DSM load through the load balancer: dsmGroups sessions, each with a writer and
// dsmSubscribers more connections on the same object, dsmOps writes per writer. The
// production grants let a client read and write only its own players/<client>/...
// objects, so the connections that share an object share a session (as tabs of one
// page would); nginx spreads the connections over the gateways either way.
const dsmGroups, dsmSubscribers, dsmOps = 10, 3, 30

// session fetches a DSM session through the load balancer, as a page does.
func session(t *testing.T, lb string) otbridge.Session {
	t.Helper()
	res, err := http.Get(lb + "/session")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s otbridge.Session
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /session: %d %v", res.StatusCode, err)
	}
	return s
}

// watcher records the revisions a subscriber saw of its object.
type watcher struct {
	o    *dsmclient.Object
	mu   sync.Mutex
	revs map[int64]bool
}

// testDSMClients connects the clients through the load balancer, checks that both
// gateways got some, writes from each writer and checks that every acknowledged op
// reached every subscriber of its object, whichever gateway each is connected to.
func testDSMClients(t *testing.T, lb string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dial := func(cfg dsmclient.Config) *dsmclient.Client {
		cfg.URL = "ws" + lb[len("http"):] + "/dsm"
		c, err := dsmclient.Dial(ctx, cfg)
		if err != nil {
			t.Fatalf("dial through the load balancer: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	instances := map[string]int{}
	type group struct {
		obj    string
		writer *dsmclient.Object
		ack    chan struct{} // one op in flight at a time: an ack lets the next go
		mu     sync.Mutex
		acked  []int64
		subs   []*watcher
	}
	groups := make([]*group, dsmGroups)
	for i := range groups {
		sess := session(t, lb)
		g := &group{obj: fmt.Sprintf("players/%s/topology/dsm", sess.Client), ack: make(chan struct{}, 1)}
		groups[i] = g
		// Subscribers first: every op after their snapshot reaches them as an op.
		for range dsmSubscribers {
			c := dial(dsmclient.Config{Token: sess.Token})
			instances[c.Welcome().Instance]++
			o, err := c.Subscribe(ctx, g.obj)
			if err != nil {
				t.Fatal(err)
			}
			w := &watcher{o: o, revs: map[int64]bool{}}
			o.OnChange(func(ev dsmclient.Event) {
				w.mu.Lock()
				w.revs[ev.Rev] = true
				w.mu.Unlock()
			})
			g.subs = append(g.subs, w)
		}
		c := dial(dsmclient.Config{Token: sess.Token, OnAck: func(a dsmclient.Ack) {
			g.mu.Lock()
			g.acked = append(g.acked, a.Rev)
			g.mu.Unlock()
			g.ack <- struct{}{}
		}})
		instances[c.Welcome().Instance]++
		o, err := c.Subscribe(ctx, g.obj)
		if err != nil {
			t.Fatal(err)
		}
		g.writer = o
	}
	if instances["gw1"] == 0 || instances["gw2"] == 0 {
		t.Fatalf("nginx did not spread the connections over both gateways: %v", instances)
	}

	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() {
			// One op at a time, each acknowledged before the next: the client would compose
			// ops written while one is in flight into one, and fewer, bigger ops would
			// prove less.
			for n := range dsmOps {
				if err := g.writer.Do(store.Set("n", fmt.Sprint(n)), store.Set(fmt.Sprintf("f%d", n), "v")); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-g.ack:
				case <-ctx.Done():
					t.Errorf("%s: op %d not acknowledged: %v", g.obj, n, ctx.Err())
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for _, g := range groups {
		for g.writer.Pending() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: ops still unacknowledged", g.obj)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	total := 0
	for _, g := range groups {
		if n := len(g.acked); n != dsmOps {
			t.Fatalf("%s: %d ops acknowledged, want %d", g.obj, n, dsmOps)
		}
		want, rev := g.writer.Server()
		g.mu.Lock()
		acked := append([]int64(nil), g.acked...)
		g.mu.Unlock()
		total += len(acked)
		if len(want) != dsmOps+1 {
			t.Fatalf("%s: writer's view has %d fields after its ops, want %d", g.obj, len(want), dsmOps+1)
		}
		for i, w := range g.subs {
			for w.o.Rev() < rev {
				if time.Now().After(deadline) {
					t.Fatalf("%s: subscriber %d at rev %d, writer at %d", g.obj, i, w.o.Rev(), rev)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got, _ := w.o.Server(); !maps.Equal(got, want) {
				t.Fatalf("%s: subscriber %d holds %v, writer %v", g.obj, i, got, want)
			}
			w.mu.Lock()
			for _, r := range acked {
				if !w.revs[r] {
					t.Errorf("%s: subscriber %d never saw acknowledged rev %d", g.obj, i, r)
				}
			}
			w.mu.Unlock()
		}
	}
	t.Logf("%d connections through nginx (%v); %d acknowledged ops, each seen by its %d subscribers",
		dsmGroups*(dsmSubscribers+1), instances, total, dsmSubscribers)
}
