package asadapter

import (
	"strings"
	"testing"
	"time"

	"dsmgw/mediagw"
	"dsmgw/store"
)

// A call whose media gateway is lost (one of a pool running apart from the adapter, which
// stops answering its checks) moves its media to another the way a takeover does: a new
// termination there and a re-INVITE in the same dialog (sipp's scenario has room for one);
// the page reattaches to the new media URL and media flows both ways again.
func TestLostMediaGatewayMovesCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, c1, srv1 := e.newMediaGateway(nil)
	_, c2, srv2 := e.newMediaGateway(nil)
	pool, err := NewMediaGatewayPool(PoolConfig{Owner: "gw1"}, []*mediagw.Client{c1, c2}, []string{srv1.URL, srv2.URL}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = pool.Run(e.ctx) }()
	s := sippScenario(t, "takeover.xml")
	e.adapterMGW("gw1", nil, func(MediaGateway) MediaGateway { return pool })
	p := "players/mona/audio"
	e.dial(p, sippTarget(s.Addr))
	before := e.waitField(p, "mgw_state", "connected")
	m := attachMedia(t, before["mgw_url"])
	m.waitReceived(t, 10)
	lost, other := srv1, srv2
	if !strings.HasPrefix(before["mgw_url"], "ws"+strings.TrimPrefix(srv1.URL, "http")) {
		lost, other = srv2, srv1
	}
	lost.Close() // its API no longer answers: the pool's checks fail

	after := e.waitMoved(p, before["mgw_url"])
	if !strings.HasPrefix(after["mgw_url"], "ws"+strings.TrimPrefix(other.URL, "http")) {
		t.Fatalf("media URL %s after the loss, want one of the other media gateway %s", after["mgw_url"], other.URL)
	}
	m.close()
	m = attachMedia(t, after["mgw_url"])
	defer m.close()
	m.waitReceived(t, 25)
	if after["call_id"] != before["call_id"] || after["player_state"] != "connected" {
		t.Fatalf("after the loss: %v (before %v)", after, before)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // INVITE, ACK, the move's re-INVITE, ACK, BYE
}

// A media gateway that was lost and answers again (restarted) takes new terminations
// again at once, although moving its calls away marked it as one to avoid (canMove, as
// for a media gateway that announced its shutdown). The topology test
// (TestMediaApart/a_restarted_media_gateway_takes_new_calls_again) found it avoided for
// the rest of avoidAfterShutdown.
func TestPoolTakesBackRestartedMediaGateway(t *testing.T) {
	t.Parallel()
	var clients []*mediagw.Client
	names := []string{"http://mgw1.invalid", "http://mgw2.invalid"}
	for _, u := range names {
		c, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: u, Secret: testSecret})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	pool, err := NewMediaGatewayPool(PoolConfig{Owner: "gw1"}, clients, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	lost := pool.members[0]
	var moved []string
	pool.onLoss(func(terms []string) { moved = terms })
	pool.where["t1"] = lost
	for range pool.cfg.FailAfter {
		pool.checked(lost, false)
	}
	if lost.up.Load() || len(moved) != 1 || !pool.canMove("t1") {
		t.Fatalf("after %d failed checks: up %v, moved %v", pool.cfg.FailAfter, lost.up.Load(), moved)
	}
	for range 4 {
		if m := pool.pick(); m == lost {
			t.Fatal("a lost media gateway was picked")
		}
	}
	pool.checked(lost, true)
	picked := map[*poolMember]int{}
	for range 4 {
		picked[pool.pick()]++
	}
	if picked[lost] != 2 {
		t.Fatalf("after it answered again: picked %d of 4 times, want 2 (in turn)", picked[lost])
	}
	// A stopping media gateway (its shutdown event) is still avoided while it answers.
	pool.where["t2"] = lost
	pool.canMove("t2")
	pool.checked(lost, true)
	if lost.avoidUntil.Load() < time.Now().UnixNano() {
		t.Fatal("a stopping media gateway that still answers is no longer avoided")
	}
}
