package asadapter

import (
	"strings"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// registerUser does what the registration half does once the browser with client key
// client is logged in as user: the Directory names the browser, users/<user> says
// registered (without the client key, which pages must not read).
func (e *env) registerUser(user, client string) {
	e.t.Helper()
	e.dir.login(user, client)
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: "users/" + user, Base: -1,
		Ops: []store.Op{store.Set("registration", "registered")}}); err != nil {
		e.t.Fatal(err)
	}
}

// sippCaller starts sipp's built-in UAC calling user at the adapter.
func sippCaller(t *testing.T, user, adapterAddr string) *testpeer.Sipp {
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: "uac", Remote: adapterAddr,
		RTPEcho: true, NoWait: true, Args: []string{"-m", "1", "-s", user, "-d", "300"}})
}

func TestIncomingCallAnsweredByBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("hank", "hankclient")
	a := e.adapter("gw1", nil)
	s := sippCaller(t, "hank", a.a.Addr("udp"))
	p := "players/hankclient/audio"
	fl := e.waitField(p, "player_state", "ringing")
	if !strings.Contains(fl["caller"], "sipp") || fl["call_id"] == "" {
		t.Fatalf("ringing player: %v", fl)
	}
	e.browser(p, store.Set("player_state", "connecting"))
	fl = e.waitField(p, "mgw_state", "connected")
	if fl["mgw_url"] == "" || fl["player_state"] != "connected" {
		t.Fatalf("answered player: %v", fl)
	}
	// sipp hangs up after its pause.
	e.waitField(p, "player_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

func TestIncomingCallRejectedByBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("ivy", "ivyclient")
	a := e.adapter("gw1", nil)
	s := sippCaller(t, "ivy", a.a.Addr("udp"))
	p := "players/ivyclient/audio"
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	if code, err := s.Wait(waitFor); err != nil || code != 1 {
		t.Fatalf("sipp: exit %d (want 1: its one call was rejected), %v", code, err)
	}
	e.waitNoTerminations()
}

func TestIncomingCallForUnknownUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.adapter("gw1", nil)
	s := sippCaller(t, "nobody", a.a.Addr("udp"))
	if code, err := s.Wait(waitFor); err != nil || code != 1 {
		t.Fatalf("sipp: exit %d (want 1: 404), %v", code, err)
	}
}
