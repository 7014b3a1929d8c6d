package asadapter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// A re-dial while our CANCEL is pending: once the browser hung up a call still ringing,
// the player is the user's again at once, whatever the far end does with the old INVITE
// transaction (the page once sat in "connecting" for 34 s, until the 487 came or the
// transaction timed out).

// TestRedialWhileCancelPending: the far end holds the 487 of the cancelled INVITE (for an
// hour: the old transaction is still pending when the test ends); a new call on the same
// player connects to another far end all the same.
func TestRedialWhileCancelPending(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	held := sippScenario(t, "cancel_held.xml")
	next := sippScenario(t, "answer.xml")
	e.adapter("gw1", nil)
	p := "players/redial/audio"
	e.dial(p, sippTarget(held.Addr))
	e.waitField(p, "progress", "ringing")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	e.dial(p, sippTarget(next.Addr))
	e.waitField(p, "mgw_state", "connected")
	if sippSent(t, held, "SIP/2.0 487") {
		t.Fatal("the held 487 was sent: the old transaction is no longer pending")
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, next)
	e.waitNoTerminations()
}

// TestRedialWhileAnswerCrossesCancel: the far end answers the cancelled INVITE 200 (its
// answer crossed our CANCEL) after a second; the old call is ACKed and hung up in the
// background while the player, dialled again, stays in its new call.
func TestRedialWhileAnswerCrossesCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	crossed := sippScenario(t, "cancel_crossed.xml", "-d", "1000")
	next := sippScenario(t, "answer.xml")
	e.adapter("gw1", nil)
	p := "players/redial2/audio"
	e.dial(p, sippTarget(crossed.Addr))
	e.waitField(p, "progress", "ringing")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	e.dial(p, sippTarget(next.Addr))
	e.waitField(p, "mgw_state", "connected")
	waitSipp(t, crossed) // the scenario checks our ACK and BYE of the crossed answer
	if fl := e.fields(p); fl["mgw_state"] != "connected" || fl["player_state"] != "connected" {
		t.Fatalf("the old call's end touched the new call: %v", fl)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, next)
	e.waitNoTerminations()
}

// sippSent reports whether sipp's message log shows a message sent whose first line
// starts with prefix.
func sippSent(t *testing.T, s *testpeer.Sipp, prefix string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "-----------------------------------------------") {
		_, msg, ok := strings.Cut(block, "message sent")
		if !ok {
			continue
		}
		for _, l := range strings.Split(msg, "\n")[1:] {
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
