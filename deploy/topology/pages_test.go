package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter"
	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// goPage is a page without a browser: a DSM client through the load balancer holding a
// session's audio player object, writing what the page's player writes to place, answer
// and end calls (webclient/player.js), and reconnecting through nginx when its gateway
// goes away, as the page does. Without a browser there is no media: a call's success is
// the gateway's mgw_state connected (the SIP side answered and the media gateway holds
// the call's terminations).
type goPage struct {
	sess   otbridge.Session
	cl     *dsmclient.Client
	player *dsmclient.Object // players/<client>/audio
	index  *dsmclient.Object // the players index, written blind
	dials  atomic.Int32      // (re)connects
}

// testPing and testDeadAfter make the test's DSM clients notice a connection to a
// vanished gateway (a link cut: no reset) within seconds, where the page's dsm.js takes
// 45 s: the tests wait for what happens after the reconnect, not for the detection.
const (
	testPing      = 500 * time.Millisecond
	testDeadAfter = 3 * time.Second
)

// newPage opens a page's session and DSM connection through the load balancer.
func newPage(t *testing.T, lb string) *goPage {
	t.Helper()
	p := &goPage{sess: session(t, lb)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := dsmclient.Dial(ctx, dsmclient.Config{URL: "ws" + strings.TrimPrefix(lb, "http") + "/dsm",
		TokenFunc:    func(context.Context) (string, error) { p.dials.Add(1); return p.sess.Token, nil },
		PingInterval: testPing, DeadAfter: testDeadAfter})
	if err != nil {
		t.Fatalf("page: dial through the load balancer: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	p.cl = cl
	addr := "players/" + p.sess.Client + "/audio"
	if p.player, err = cl.Subscribe(ctx, addr); err != nil {
		t.Fatalf("page: subscribe %s: %v", addr, err)
	}
	p.index = cl.Blind("players")
	if err := p.index.Do(store.Set(addr, "audio")); err != nil {
		t.Fatal(err)
	}
	return p
}

// addr is the page's player object.
func (p *goPage) addr() string { return p.player.Addr() }

// dial places a call to uri, clearing what the last call left (player.js dial).
func (p *goPage) dial(t *testing.T, uri string) {
	t.Helper()
	if err := p.place(uri); err != nil {
		t.Fatalf("page: dial %s: %v", uri, err)
	}
}

// place writes what the page's Call writes.
func (p *goPage) place(uri string) error {
	ops := []store.Op{}
	for _, f := range []string{"mgw_state", "mgw_url", "progress", "sip_status", "sip_reason", "caller", "call_id", "dtmf", "hold", "conference"} {
		ops = append(ops, store.Del(f))
	}
	ops = append(ops, store.Set("service", "mmtel"), store.Set("encoding", "PCMU"), store.Set("remote", uri),
		store.Set("player_state", "connecting"))
	return p.player.Do(ops...)
}

// hangUp ends the call as the page's Hang up does.
func (p *goPage) hangUp(t *testing.T) {
	t.Helper()
	if err := p.end(); err != nil {
		t.Fatalf("page: hang up: %v", err)
	}
}

// end writes what the page's Hang up writes.
func (p *goPage) end() error { return p.player.Do(store.Set("player_state", "disconnected")) }

// answer accepts a ringing incoming call (player.js answer).
func (p *goPage) answer() error {
	return p.player.Do(store.Expect("player_state", "ringing"), store.Set("encoding", "PCMU"), store.Set("player_state", "connecting"))
}

// fields returns the player object as the gateways last wrote it.
func (p *goPage) fields() map[string]string {
	f, _ := p.player.Server()
	return maps.Clone(f)
}

// waitFields waits until cond holds on the player object.
func (p *goPage) waitFields(t *testing.T, what string, d time.Duration, cond func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		f := p.fields()
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("page %s: %s: not within %s; player %v", p.sess.Client, what, d, f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait polls the player object until cond holds or d passes, and returns it (for
// goroutines, which must not stop the test).
func (p *goPage) wait(d time.Duration, cond func(map[string]string) bool) (map[string]string, bool) {
	deadline := time.Now().Add(d)
	for {
		f := p.fields()
		if cond(f) {
			return f, true
		}
		if time.Now().After(deadline) {
			return f, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connected is a call the gateway established.
func connected(f map[string]string) bool { return f["mgw_state"] == "connected" && f["call_id"] != "" }

// ended is a call that is over, however it ended.
func ended(f map[string]string) bool {
	s := f["mgw_state"]
	return s == "disconnected" || s == "failed"
}

// redisClient returns a client of the stack's Redis from the host namespace, for what a
// test reads outside the DSM (claims, settings).
func redisClient(t *testing.T, s *Stack) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(s.Service(t, "redis").Addr.String(), "6379")})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// claimHolder returns the instance holding a player's call claim ("" for none). The
// claim's value is "<instance>/<generation>" (asadapter.ClaimInstance).
func claimHolder(t *testing.T, rdb *redis.Client, player string) string {
	t.Helper()
	v, err := rdb.Get(context.Background(), claimKey(player)).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		t.Fatalf("read claim of %s: %v", player, err)
	}
	return asadapter.ClaimInstance(v)
}

// gatewayAddrs maps the running gateways' addresses to their names.
func gatewayAddrs(s *Stack) map[string]string {
	out := map[string]string{}
	for _, name := range s.Running() {
		if strings.HasPrefix(name, "gw") {
			out[s.services[name].Addr.String()] = name
		}
	}
	return out
}

// echoURI is the demo conference server's echo service: it answers any number of calls
// at once (bob, a single phone, takes one at a time).
const echoURI = "sip:echo@sip.dsmgw.test"

// placeCalls makes n pages call echoURI and waits until every call is established; it
// returns the pages.
func placeCalls(t *testing.T, lb string, n int) []*goPage {
	t.Helper()
	pages := make([]*goPage, n)
	for i := range pages {
		pages[i] = newPage(t, lb)
		pages[i].dial(t, echoURI)
	}
	for i, p := range pages {
		p.waitFields(t, fmt.Sprintf("call %d established", i), 30*time.Second, connected)
	}
	return pages
}
