package asadapter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dsmgw/internal/testpeer"
)

// drain calls HangupAll with the tests' failure deadline and checks it ended want calls.
func (e *env) drain(i *instance, want int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, waitFor)
	defer cancel()
	if n := i.a.HangupAll(ctx); n != want {
		e.t.Fatalf("HangupAll ended %d calls, want %d", n, want)
	}
}

// checkDrained checks that a player shows the drain's hangup and that nothing of its call
// is left.
func (e *env) checkDrained(player string) {
	e.t.Helper()
	fl := e.fields(player)
	if fl["player_state"] != "disconnected" || fl["mgw_state"] != "disconnected" ||
		fl["sip_reason"] != reasonShutdown || fl["mgw_url"] != "" {
		e.t.Fatalf("player after the drain: %v", fl)
	}
	e.checkGone(player)
}

// sippReceived reports whether sipp's message log shows a message received whose first
// line starts with prefix.
func sippReceived(t *testing.T, s *testpeer.Sipp, prefix string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "-----------------------------------------------") {
		_, msg, ok := strings.Cut(block, "message received")
		if !ok {
			continue
		}
		lines := strings.Split(msg, "\n")
		for _, l := range lines[1:] { // lines[0] ends the "received" line
			if l = strings.TrimSpace(l); l != "" {
				if strings.HasPrefix(l, prefix) {
					return true
				}
				break
			}
		}
	}
	return false
}

func TestHangupAllEndsAnsweredCallWithBye(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "answer.xml")
	i := e.adapter("gw1", nil)
	p := "players/drain1/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	e.drain(i, 1)
	waitSipp(t, s) // the scenario ends with the BYE it received and answered
	if !sippReceived(t, s, "BYE ") {
		t.Fatal("sipp received no BYE")
	}
	e.checkDrained(p)
}

func TestHangupAllCancelsRingingCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "noanswer.xml")
	i := e.adapter("gw1", nil)
	p := "players/drain2/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "progress", "ringing")
	e.drain(i, 1)
	waitSipp(t, s) // CANCEL received, 487 sent, ACK received
	e.checkDrained(p)
}

func TestHangupAllRejectsRingingIncomingCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("drainee", "drainclient")
	i := e.adapter("gw1", nil)
	s := sippCaller(t, "drainee", i.a.Addr("udp"))
	p := "players/drainclient/audio"
	e.waitField(p, "player_state", "ringing")
	e.drain(i, 1)
	if code, err := s.Wait(waitFor); err != nil || code != 1 {
		t.Fatalf("sipp: exit %d (want 1: its call was rejected), %v", code, err)
	}
	if !sippReceived(t, s, "SIP/2.0 480") {
		t.Fatal("sipp did not receive 480")
	}
	e.checkDrained(p)

	// A draining instance takes no new call: the next INVITE is answered 503.
	s2 := sippCaller(t, "drainee", i.a.Addr("udp"))
	if code, err := s2.Wait(waitFor); err != nil || code != 1 {
		t.Fatalf("sipp after the drain: exit %d (want 1), %v", code, err)
	}
	if !sippReceived(t, s2, "SIP/2.0 503") {
		t.Fatal("INVITE during the drain not answered 503")
	}
}
