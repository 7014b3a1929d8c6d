package asadapter

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/mediagw"
	"dsmgw/store"
)

// An mmtel player's INVITE carries the MMTel identification; sipp checks each header
// with a regular expression and fails the call on a mismatch.
func TestMMTelInviteIdentification(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.adapter("gw1", nil)
	s := sippScenario(t, "mmtel_invite.xml")
	p := "players/mm1/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
}

// A poc player's INVITE carries the MCPTT identification and floor control line (checked
// by sipp); once connected the player shows the floor idle, the termination is gated,
// and a request nobody answers ends denied with the participant's reason while the gate
// stays closed. Hanging up clears the floor fields.
func TestPoCInviteIdentificationAndFloor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.adapter("gw1", func(c *Config) { c.Floor.BindAddr = "127.0.0.1" })
	s := sippScenario(t, "poc_invite.xml")
	p := "players/poc1/audio"
	e.browser(p, store.Set("service", "poc"), store.Set("remote", "sip:team@"+s.Addr),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting"))
	e.waitField(p, "mgw_state", "connected")
	e.waitField(p, "floor_state", "idle")
	term := e.onlyTermination()
	if !term.Gated || term.GateOpen {
		t.Fatalf("termination of a poc call: gated %v, open %v", term.Gated, term.GateOpen)
	}
	e.browser(p, store.Set("floor", "request"))
	fl := e.waitField(p, "floor_reason", "no answer from the floor control server")
	if fl["floor_state"] != "denied" && fl["floor_state"] != "idle" {
		t.Fatalf("floor after an unanswered request: %v", fl)
	}
	if _, ok := fl["floor"]; ok {
		t.Fatalf("the floor intent was not consumed: %v", fl)
	}
	if term = e.onlyTermination(); term.GateOpen {
		t.Fatal("the gate opened without a grant")
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	fl = e.waitField(p, "mgw_state", "disconnected")
	for _, f := range []string{"floor_state", "floor_reason", "floor_talker", "floor_position", "floor_duration"} {
		if _, ok := fl[f]; ok {
			t.Errorf("%s left after the call: %v", f, fl)
		}
	}
	waitSipp(t, s)
}

// A service the gateway does not offer fails the player before any SIP is sent.
func TestUnknownServiceFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.adapter("gw1", nil)
	p := "players/vid1/audio"
	e.browser(p, store.Set("service", "video"), store.Set("remote", "sip:bob@127.0.0.1:9"),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting"))
	fl := e.waitField(p, "player_state", "failed")
	if fl["sip_status"] != "488" || !strings.Contains(fl["sip_reason"], "unknown service") {
		t.Fatalf("a call for an unknown service: %v", fl)
	}
	e.waitNoTerminations()
}

// An incoming call's service, asserted by the network, reaches the new player: a
// push-to-talk call rings as poc, is answered with our floor control line (checked by
// sipp) and runs its floor channel.
func TestIncomingServiceReachesPlayer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("pat", "patclient")
	a := e.adapter("gw1", func(c *Config) { c.Floor.BindAddr = "127.0.0.1" })
	scen := sippScenarioPath(t, "invite_service.xml")
	s := sippUAC(t, scen, "pat", a.a.Addr("udp"))
	p := "players/patclient/audio"
	fl := e.waitField(p, "player_state", "ringing")
	if fl["service"] != "poc" {
		t.Fatalf("ringing player's service %q, want poc: %v", fl["service"], fl)
	}
	e.browser(p, store.Set("player_state", "connecting"))
	e.waitField(p, "mgw_state", "connected")
	e.waitField(p, "floor_state", "idle")
	e.waitField(p, "player_state", "disconnected") // sipp hangs up
	waitSipp(t, s)
	e.waitNoTerminations()
}

// An incoming call for a service the gateway does not offer is refused with 488 and a
// Warning naming it (checked by sipp); the player never rings.
func TestIncomingUnsupportedServiceRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("quinn", "quinnclient")
	a := e.adapter("gw1", nil)
	s := sippUAC(t, sippScenarioPath(t, "invite_unsupported.xml"), "quinn", a.a.Addr("udp"))
	waitSipp(t, s)
	if fl := e.fields("players/quinnclient/audio"); len(fl) != 0 {
		t.Fatalf("the player of a refused call: %v", fl)
	}
}

// onlyTermination returns the one termination of the media gateway.
func (e *env) onlyTermination() mediagw.Termination {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ts, err := e.mgwc.List(e.ctx, "")
		if err == nil && len(ts) == 1 {
			return ts[0]
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("terminations: %v, %v; want one", ts, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sippScenarioPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// sippUAC runs a caller scenario toward user at the adapter (sipp's -s).
func sippUAC(t *testing.T, scen, user, adapterAddr string) *testpeer.Sipp {
	t.Helper()
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Remote: adapterAddr,
		Args: []string{"-m", "1", "-s", user}})
}
