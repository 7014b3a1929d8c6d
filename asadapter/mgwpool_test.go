package asadapter

import (
	"strings"
	"testing"

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
