package otbridge_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

var seedFlag = flag.Uint64("seed", 0, "random seed of the convergence tests (also env DSM_SEED); 0 picks one")

func convergenceSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if s := os.Getenv("DSM_SEED"); s != "" && seed == 0 {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DSM_SEED: %v", err)
		}
		seed = v
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -seed %d or DSM_SEED=%d)", seed, seed, seed)
	return seed
}

// TestConvergence runs the convergence scenario against one redis-server.
func TestConvergence(t *testing.T) {
	t.Parallel()
	seed := convergenceSeed(t)
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	runConvergence(t, seed, func() redis.UniversalClient { return newRedisClient(t, r.Addr) })
}

// TestConvergenceCluster runs the same scenario against a 3-master Redis Cluster.
func TestConvergenceCluster(t *testing.T) {
	t.Parallel()
	seed := convergenceSeed(t)
	cl := testpeer.StartCluster(t, testpeer.RedisOptions{})
	runConvergence(t, seed, func() redis.UniversalClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs, PoolSize: 64})
		t.Cleanup(func() { c.Close() })
		return c
	})
}

const (
	convClients   = 20 // spread over two instances
	convObjects   = 3
	convFields    = 5
	convOpsPerCli = 40
)

// convClient is one replica of the scenario with what it saw acknowledged and refused.
type convClient struct {
	key   string
	load  func() // a page load: a new client with the key's token, subscribed to every object
	cli   *dsmclient.Client
	objs  []*dsmclient.Object
	conn  atomic.Pointer[net.Conn] // the TCP connection underneath, to drop it
	mu    sync.Mutex
	acks  []dsmclient.Ack
	nacks []dsmclient.Nack
}

// runConvergence: 20 clients on 2 instances do random sets, deletes and expects on 3
// shared objects with random delays, while a Go service commits directly and connections
// are dropped underneath. After quiescence every replica equals Redis, the op log has every
// revision exactly once, every acknowledged op is in it at its revision, and no op is
// there twice or after a nack.
func runConvergence(t *testing.T, seed uint64, newClient func() redis.UniversalClient) {
	scfg := store.Config{OplogLen: 1 << 16} // keep the whole history for the checks
	bcfg := otbridge.Config{Policy: otbridge.AllowAll{}, OpsPerSecond: 1e6}
	insts := []*instance{
		startInstance(t, newClient(), bcfg, scfg, nil),
		startInstance(t, newClient(), bcfg, scfg, nil),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	objs := make([]string, convObjects)
	for i := range objs {
		objs[i] = fmt.Sprintf("shared/%d", i)
	}

	clients := make([]*convClient, convClients)
	for i := range clients {
		in := insts[i%2]
		cc := &convClient{}
		sess := in.session(t, "")
		cc.key = sess.Client
		cc.load = func() {
			dialer := &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				if err == nil {
					cc.conn.Store(&c)
				}
				return c, err
			}}
			cc.cli = in.dial(t, dsmclient.Config{
				Token: sess.Token, Dialer: dialer, ReconnectMin: 5 * time.Millisecond, ReconnectMax: 50 * time.Millisecond,
				OnAck:  func(a dsmclient.Ack) { cc.mu.Lock(); cc.acks = append(cc.acks, a); cc.mu.Unlock() },
				OnNack: func(n dsmclient.Nack) { cc.mu.Lock(); cc.nacks = append(cc.nacks, n); cc.mu.Unlock() },
			})
			cc.objs = nil
			for _, obj := range objs {
				o, err := cc.cli.Subscribe(ctx, obj)
				if err != nil {
					t.Error(err)
					return
				}
				cc.objs = append(cc.objs, o)
			}
		}
		cc.load()
		clients[i] = cc
	}

	var wg sync.WaitGroup
	var drops, reloads atomic.Int64
	for i, cc := range clients {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < convOpsPerCli; n++ {
				if rng.IntN(40) == 0 {
					// The page reloads with its token once its writes are answered: a new
					// client (a new epoch) of the same key, numbering from 1 again.
					if err := cc.cli.Idle(ctx); err != nil {
						t.Error(err)
						return
					}
					cc.cli.Close()
					cc.load()
					reloads.Add(1)
				}
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				o := cc.objs[rng.IntN(len(cc.objs))]
				_ = o.Do(randomOp(rng, o, i, n)...)
				if rng.IntN(25) == 0 {
					if c := cc.conn.Load(); c != nil {
						(*c).Close() // a network failure: no close handshake
						drops.Add(1)
					}
				}
			}
		}()
	}
	// A Go service writes directly through the store, as the AS adapter does.
	wg.Add(1)
	go func() {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(seed, 999))
		for n := 0; n < 60; n++ {
			time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
			obj := objs[rng.IntN(len(objs))]
			f := "f" + strconv.Itoa(rng.IntN(convFields))
			ops := []store.Op{store.Set(f, fmt.Sprintf("svc-%d", n))}
			if rng.IntN(3) == 0 {
				ops = []store.Op{store.Del(f)}
			}
			if _, err := insts[n%2].st.Commit(ctx, store.Commit{Obj: obj, Client: "svc", Seq: int64(n + 1), Base: -1, Ops: ops}); err != nil {
				t.Errorf("service commit: %v", err)
			}
		}
	}()
	wg.Wait()
	for _, cc := range clients {
		if err := cc.cli.Idle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d connections dropped", drops.Load())

	for oi, obj := range objs {
		want, err := insts[0].st.Snapshot(ctx, obj)
		if err != nil {
			t.Fatal(err)
		}
		for ci, cc := range clients {
			o := cc.objs[oi]
			waitFor(t, ctx, func() bool { return o.Rev() >= want.Rev })
			server, rev := o.Server()
			if rev != want.Rev || !maps.Equal(server, want.Fields) || !maps.Equal(o.Fields(), want.Fields) {
				t.Errorf("client %d %s: rev %d fields %v view %v; Redis rev %d fields %v",
					ci, obj, rev, server, o.Fields(), want.Rev, want.Fields)
			}
		}
		checkLog(t, ctx, insts[0], obj, want, clients)
	}
	var acked, nacked int
	for _, cc := range clients {
		acked += len(cc.acks)
		nacked += len(cc.nacks)
	}
	t.Logf("%d ops acknowledged, %d refused (expects), %d connections dropped, %d reloads", acked, nacked, drops.Load(), reloads.Load())
	if acked == 0 || drops.Load() == 0 {
		t.Errorf("scenario too weak: %d acks, %d drops", acked, drops.Load())
	}
}

// unicodeEdges are value suffixes at the edges of Unicode: a surrogate pair's character,
// a combining mark, NUL, 4-byte UTF-8, right-to-left text, characters JSON escapes.
var unicodeEdges = []string{"", "😀", "e\u0301", "a\x00b", "\U00010348", "שלום", "\"\\\n\t", "👩\u200d💻"}

// randomOp makes a set, a delete, an expect-then-set on the current local value, or a
// stale expect likely to fail.
func randomOp(rng *rand.Rand, o *dsmclient.Object, ci, n int) []store.Op {
	f := "f" + strconv.Itoa(rng.IntN(convFields))
	v := fmt.Sprintf("c%d-%d%s", ci, n, unicodeEdges[rng.IntN(len(unicodeEdges))])
	switch rng.IntN(5) {
	case 0:
		return []store.Op{store.Del(f)}
	case 1:
		if cur, ok := o.Get(f); ok {
			return []store.Op{store.Expect(f, cur), store.Set(f, v)}
		}
		return []store.Op{store.ExpectAbsent(f), store.Set(f, v)}
	case 2:
		return []store.Op{store.Expect(f, "never"), store.Set(f, v)}
	case 3:
		g := "f" + strconv.Itoa(rng.IntN(convFields))
		return []store.Op{store.Set(f, v), store.Set(g, v+"b")}
	}
	return []store.Op{store.Set(f, v)}
}

// checkLog verifies the op log of obj against Redis and the clients' acks and nacks.
func checkLog(t *testing.T, ctx context.Context, in *instance, obj string, want store.Read, clients []*convClient) {
	t.Helper()
	raw, err := in.st.Redis().LRange(ctx, keyOf(obj, "l", in.st.Config().Shards), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(raw)) != want.Rev {
		t.Fatalf("%s: op log has %d entries for rev %d", obj, len(raw), want.Rev)
	}
	byRev := make(map[int64]store.Entry)
	seen := make(map[string]int64)
	replay := map[string]string{}
	for i := len(raw) - 1; i >= 0; i-- {
		var e store.Entry
		if err := json.Unmarshal([]byte(raw[i]), &e); err != nil {
			t.Fatal(err)
		}
		if e.Rev != int64(len(raw)-i) {
			t.Fatalf("%s: entry %d has rev %d", obj, len(raw)-i, e.Rev)
		}
		id := e.Client + "/" + strconv.FormatInt(e.Seq, 10)
		if r, dup := seen[id]; dup {
			t.Errorf("%s: op %s applied twice, at %d and %d", obj, id, r, e.Rev)
		}
		seen[id] = e.Rev
		byRev[e.Rev] = e
		store.Apply(replay, e.Ops)
	}
	if !maps.Equal(replay, want.Fields) {
		t.Errorf("%s: replaying the log gives %v, Redis holds %v", obj, replay, want.Fields)
	}
	for _, cc := range clients {
		for _, a := range cc.acks {
			if a.Obj != obj {
				continue
			}
			e, ok := byRev[a.Rev]
			if !ok || e.Client != cc.key || e.Seq != a.Seq || !sameOps(e.Ops, store.Writes(a.Ops)) {
				t.Errorf("%s: acknowledged op %s/%d at rev %d not in the log (entry %+v)", obj, cc.key, a.Seq, a.Rev, e)
			}
		}
		// Every entry of this client key is one of its acknowledged ops, so no refused op
		// was committed. (A seq refused in one epoch may be committed by a later one: a
		// refused op's seq is not used, and the reloaded page renumbers after the last
		// committed seq; so refusals are not checked by seq.)
		acked := map[int64]bool{}
		for _, a := range cc.acks {
			if a.Obj == obj {
				acked[a.Rev] = true
			}
		}
		for rev, e := range byRev {
			if e.Client == cc.key && !acked[rev] {
				t.Errorf("%s: entry %s/%d at rev %d was never acknowledged", obj, cc.key, e.Seq, rev)
			}
		}
	}
}

func sameOps(a, b []store.Op) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Kind != b[i].Kind || a[i].Field != b[i].Field || (a[i].Value == nil) != (b[i].Value == nil) ||
			(a[i].Value != nil && *a[i].Value != *b[i].Value) {
			return false
		}
	}
	return true
}
