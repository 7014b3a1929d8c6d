package asadapter

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"

	"dsmgw/imsdemo"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

const tgDomain = "ptt.dsmgw.test"

// startTalkGroups runs the demo conference server with talk groups for one test.
func startTalkGroups(t testing.TB, cfg imsdemo.Config) *imsdemo.Server {
	t.Helper()
	cfg.ListenUDP, cfg.ListenTCP, cfg.RTPBindAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1"
	cfg.RTPPortMin = 34000 + 2*testpeer.FreePort(t)%2000
	cfg.RTPPortMax = cfg.RTPPortMin + 199
	cfg.Domain, cfg.TalkGroupDomain, cfg.DrainTimeout = "conf.dsmgw.test", tgDomain, 2*time.Second
	s, err := imsdemo.New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

// joinTalkGroup writes what a page writes to join a talk group as a poc player, and
// waits for the call and its floor.
func (e *env) joinTalkGroup(player, group string) map[string]string {
	e.t.Helper()
	e.browser(player, store.Set("service", "poc"), store.Set("conference", group),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting"))
	e.waitField(player, "mgw_state", "connected")
	return e.waitField(player, "floor_state", "idle")
}

// attach connects a player's media WebSocket as its page does.
func (e *env) attach(player string) *websocket.Conn {
	e.t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(e.fields(player)["mgw_url"], nil)
	if err != nil {
		e.t.Fatalf("%s: media attach: %v", player, err)
	}
	e.t.Cleanup(func() { ws.Close() })
	// A first packet: the termination's stream starts (the gate drops it).
	p := rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 7}, Payload: make([]byte, 160)}
	b, _ := p.Marshal()
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		e.t.Fatal(err)
	}
	return ws
}

// Two poc players in one talk group of the demo conference server, driven only through
// their player objects: a request is granted (the gate opens, the other sees who talks),
// a request while taken is queued and granted on release, and the holder's media
// WebSocket closing releases the floor at once.
func TestTalkGroupFloorThroughTheDSM(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	conf := startTalkGroups(t, imsdemo.Config{})
	e.dir.login("amy", "amycl")
	e.writeUser("amy", "Amy", store.Set("sip_uri", "sip:amy@dsmgw.test"),
		store.Set("registration", "registered"))
	e.dir.login("ben", "bencl")
	e.writeUser("ben", "Ben", store.Set("sip_uri", "sip:ben@dsmgw.test"),
		store.Set("registration", "registered"))
	gw := e.adapter("gw1", func(c *Config) {
		c.OutboundProxy = "sip:" + conf.Addr("udp")
		c.TalkGroupDomain = tgDomain
		c.Floor.BindAddr = "127.0.0.1"
	})
	waitIdentity(t, gw.a, "amycl", true) // each calls as its user: the talker's identity
	waitIdentity(t, gw.a, "bencl", true)
	amy, ben := "players/amycl/audio", "players/bencl/audio"
	e.joinTalkGroup(amy, "crew")
	e.joinTalkGroup(ben, "crew")
	benWS := e.attach(ben)

	e.browser(amy, store.Set("floor", "request"))
	fl := e.waitField(amy, "floor_state", "granted")
	if fl["floor_duration"] != "30" {
		t.Errorf("granted for %q s, want the server's 30", fl["floor_duration"])
	}
	if !e.termOf(amy).GateOpen {
		t.Fatal("granted, but the gate is closed")
	}
	fl = e.waitField(ben, "floor_state", "taken")
	if fl["floor_talker"] != "sip:amy@dsmgw.test" {
		t.Errorf("talker %q", fl["floor_talker"])
	}

	e.browser(ben, store.Set("floor", "request"))
	fl = e.waitField(ben, "floor_state", "queued")
	if fl["floor_position"] != "1" {
		t.Errorf("queue position %q", fl["floor_position"])
	}
	if e.termOf(ben).GateOpen {
		t.Fatal("queued, but the gate is open")
	}
	e.browser(amy, store.Set("floor", "release"))
	e.waitField(ben, "floor_state", "granted")
	fl = e.waitField(amy, "floor_state", "taken")
	if fl["floor_talker"] != "sip:ben@dsmgw.test" || e.termOf(amy).GateOpen {
		t.Fatalf("after release: %v, gate open %v", fl, e.termOf(amy).GateOpen)
	}

	// amy asks again; ben's page goes away while he talks: the floor is hers at once.
	e.browser(amy, store.Set("floor", "request"))
	e.waitField(amy, "floor_state", "queued")
	benWS.Close()
	e.waitField(amy, "floor_state", "granted")
	fl = e.waitField(ben, "floor_state", "taken")
	if fl["mgw_state"] != "connected" || e.termOf(ben).GateOpen {
		t.Fatalf("ben after his page detached: %v (the call goes on, without the floor)", fl)
	}
}

// termOf returns the termination of a player's call.
func (e *env) termOf(player string) termView {
	e.t.Helper()
	ts, err := e.mgwc.List(e.ctx, "")
	if err != nil {
		e.t.Fatal(err)
	}
	for _, tm := range ts {
		if tm.Player == player {
			return termView{Gated: tm.Gated, GateOpen: tm.GateOpen}
		}
	}
	e.t.Fatalf("no termination of %s", player)
	return termView{}
}

type termView struct{ Gated, GateOpen bool }
