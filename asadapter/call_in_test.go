package asadapter

import (
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// registerUser does what the registration half does once the browser with client key
// client is logged in as user: the Directory names the browser, the users index lists
// the user, users/<user> says registered (without the client key, which pages must not
// read).
func (e *env) registerUser(user, client string) {
	e.t.Helper()
	e.dir.login(user, client)
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: "users", Base: -1,
		Ops: []store.Op{store.Set(user, user)}}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: "users/" + user, Base: -1,
		Ops: []store.Op{store.Set("registration", "registered")}}); err != nil {
		e.t.Fatal(err)
	}
}

// sippCaller starts sipp's built-in UAC calling user at the adapter.
func sippCaller(t *testing.T, user, adapterAddr string) *testpeer.Sipp {
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: "uac", Remote: adapterAddr,
		RTPEcho: true, Args: []string{"-m", "1", "-s", user, "-d", "300"}})
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

// TestIncomingCallWaitsForEndingCall: an INVITE for a user whose previous call is over
// but whose owner still holds the claim while it cleans up waits for the claim and rings
// (it was answered 486 Busy: a phone calling a user again right after its call ended, as
// in a rolling restart, lost the call). A user whose call is still up is busy at once.
func TestIncomingCallWaitsForEndingCall(t *testing.T) {
	t.Parallel()
	for name, live := range map[string]bool{"ending": false, "live": true} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			user, client := "judy"+name, "judy"+name+"cl"
			e.registerUser(user, client)
			p := "players/" + client + "/audio"
			// The previous call, owned by another instance which still holds the claim:
			// over, or still up. A lease as long as the tests' failure deadline, so that
			// the wait below is bounded by nothing but the release.
			state := "disconnected"
			if live {
				state = "connected"
			}
			e.browser(p, store.Set("player_state", state), store.Set("mgw_state", state), store.Set("call_id", "previous"))
			// Claimed before the adapter starts: its first rescan would take a live call
			// without a claim over.
			claim := redisKeys{prefix: DefaultConfig().KeyPrefix}.claim(p)
			if err := e.st.Redis().Set(e.ctx, claim, "gw0", waitFor).Err(); err != nil {
				t.Fatal(err)
			}
			i := e.adapter("gw1", func(c *Config) { c.ClaimTTL = waitFor })
			if i.a.keys.claim(p) != claim {
				t.Fatalf("claim key %s, the adapter's %s", claim, i.a.keys.claim(p))
			}
			s := sippCaller(t, user, i.a.Addr("udp"))
			if live {
				if code, err := s.Wait(waitFor); err != nil || code != 1 {
					t.Fatalf("sipp: exit %d (want 1: busy), %v", code, err)
				}
				if !sippReceived(t, s, "SIP/2.0 486") {
					t.Fatal("a call to a user in a call was not answered 486")
				}
				return
			}
			deadline := time.Now().Add(waitFor)
			for counterValue(t, i.a.met.claimWaits) == 0 {
				select {
				case <-s.Done():
					t.Fatalf("sipp ended before the INVITE waited for the claim (answered at once): %v", e.fields(p))
				default:
				}
				if time.Now().After(deadline) {
					t.Fatal("the INVITE did not wait for the claim")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := e.st.Redis().Del(e.ctx, claim).Err(); err != nil { // the owner's release
				t.Fatal(err)
			}
			e.waitField(p, "player_state", "ringing")
			e.browser(p, store.Set("player_state", "connecting"))
			e.waitField(p, "mgw_state", "connected")
			e.waitField(p, "player_state", "disconnected") // sipp hangs up after its pause
			waitSipp(t, s)
			e.waitNoTerminations()
		})
	}
}

// TestIncomingCallByeBeforeAck: the caller's BYE comes before its ACK (the ACK was lost:
// UDP, a loaded CSCF). The BYE shows the caller had the 2xx: the call ends on it at once,
// as a remote hangup, and the user is free for the next call. It once waited for an ACK
// through the 2xx retransmissions (32 s) with the player connected and the claim held:
// every call for the user meanwhile was answered 486 Busy (a phone calling again at once
// made a storm of them), and a drain in that time waited for the call to its deadline.
func TestIncomingCallByeBeforeAck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("kate", "kateclient")
	a := e.adapter("gw1", nil)
	s := sippUAC(t, sippScenarioPath(t, "bye_before_ack.xml"), "kate", a.a.Addr("udp"))
	p := "players/kateclient/audio"
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	fl := e.waitField(p, "player_state", "disconnected")
	if fl["mgw_state"] != "disconnected" || fl["sip_reason"] != "remote hangup" {
		t.Fatalf("player after the caller's BYE: %v (want a remote hangup)", fl)
	}
	if _, err := s.Wait(waitFor); err != nil {
		t.Fatal(err)
	}
	// The player is written before the claim is released (and the dialog record saved
	// once more when the BYE came, call_in_unacked.go): wait for the release.
	for deadline := time.Now().Add(waitFor); ; time.Sleep(10 * time.Millisecond) {
		h, err := a.a.claimHolder(e.ctx, p)
		if err == nil && h == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim of the ended call held by %q (%v)", h, err)
		}
	}
	// The user takes the next call.
	s = sippCaller(t, "kate", a.a.Addr("udp"))
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	e.waitField(p, "mgw_state", "connected")
	e.waitField(p, "player_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}
