package asadapter

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// Takeover during a re-INVITE in progress (docs/call-survival.md, "A re-INVITE in
// progress"): the owner's re-INVITE is kept unanswered by the far end until the
// survivor's own arrives, so the owner is lost with it pending, whatever the machine's
// speed. The survivor's re-INVITE is refused while the lost one is pending (500 with
// Retry-After, or 491) and retried; the lost one's 2xx, which went toward the lost
// instance, is acknowledged by the survivor; the direction the page asked for holds.

// waitSippRequests waits until sipp received n requests of method, and returns them.
func waitSippRequests(t *testing.T, s *testpeer.Sipp, method string, n int) []sippMsg {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		if got := sippRequests(t, s, method); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipp received %d %s requests, want %d", len(sippRequests(t, s, method)), method, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cseqNumber is the number of a CSeq value ("1002 INVITE").
func cseqNumber(t *testing.T, v string) int {
	t.Helper()
	f := strings.Fields(v)
	if len(f) != 2 {
		t.Fatalf("CSeq %q", v)
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("CSeq %q: %v", v, err)
	}
	return n
}

// killOwner kills the owner of a player's call and returns the other instance's name.
func (e *env) killOwner(player string, inst map[string]*instance) (owner, survivor string) {
	e.t.Helper()
	owner, _ = e.callOwner(player)
	survivor = "gw1"
	if owner == "gw1" {
		survivor = "gw2"
	}
	inst[owner].kill() // no BYE, no answer to anything: its listeners are gone
	return owner, survivor
}

// checkLostAcked checks that sipp received an ACK of the lost instance's re-INVITE (the
// second INVITE it received) after the ACK of its refusal of the survivor's first
// re-INVITE: only after that refusal did sipp answer the lost one (its scenario), so this
// ACK acknowledges that 2xx (an earlier one acknowledged nothing).
func checkLostAcked(t *testing.T, s *testpeer.Sipp) {
	t.Helper()
	invites := sippRequests(t, s, "INVITE")
	lost, refused := cseqNumber(t, invites[1].hdr["cseq"]), cseqNumber(t, invites[2].hdr["cseq"])
	acks := sippRequests(t, s, "ACK")
	afterRefusal := false
	for _, a := range acks {
		switch cseqNumber(t, a.hdr["cseq"]) {
		case refused:
			afterRefusal = true
		case lost:
			if afterRefusal {
				return
			}
		}
	}
	var seen []string
	for _, a := range acks {
		seen = append(seen, a.hdr["cseq"])
	}
	t.Fatalf("no ACK of the lost re-INVITE (CSeq %d) after its 200; ACKs %v", lost, seen)
}

// The page holds the call; the far end delays its answer to the owner's hold re-INVITE
// and the owner is lost meanwhile. The survivor's re-INVITE (held: a=sendonly) is
// refused with 500 and Retry-After while the hold is pending, retried after it, the
// lost hold's 200 acknowledged, and the player shows the hold the page asked for; the
// survivor then carries out the page's resume, and the media flows both ways.
func TestTakeoverDuringHoldReinvite(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover_pending_hold.xml")
	p := "players/hector/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	e.browser(p, store.Set("hold_intent", "hold"))
	waitSippRequests(t, s, "INVITE", 2) // the owner's hold, which sipp leaves unanswered
	if fl := e.fields(p); fl["hold"] != "" {
		t.Fatalf("hold %q before the far end answered the hold", fl["hold"])
	}
	_, survivor := e.killOwner(p, inst)

	after := e.waitMoved(p, before["mgw_url"])
	if after["call_id"] != before["call_id"] || after["player_state"] != "connected" {
		t.Fatalf("after the takeover: %v (before %v)", after, before)
	}
	e.waitField(p, "hold", "local") // written with the new media URL (one commit)
	if now, _ := e.callOwner(p); now != survivor {
		t.Fatalf("claim held by %s after the takeover, want %s", now, survivor)
	}
	invites := sippRequests(t, s, "INVITE")
	if len(invites) != 4 {
		t.Fatalf("sipp received %d INVITEs, want the call's, the hold, the survivor's refused one and its retry", len(invites))
	}
	lost, first, retry := cseqNumber(t, invites[1].hdr["cseq"]), cseqNumber(t, invites[2].hdr["cseq"]), cseqNumber(t, invites[3].hdr["cseq"])
	if first < lost+takeoverCSeqStep || retry <= first {
		t.Fatalf("CSeqs: lost %d, survivor's %d then %d", lost, first, retry)
	}
	if o1, o2 := sdpLine(invites[2].body, "o="), sdpLine(invites[3].body, "o="); o1 != o2 {
		t.Fatalf("retry origin %q, want the refused offer's %q", o2, o1)
	}

	// The survivor drives the call: the page's resume, media both ways again.
	e.browser(p, store.Del("hold_intent"))
	e.waitField(p, "hold", "")
	m := attachMedia(t, after["mgw_url"])
	defer m.close()
	m.waitReceived(t, 25) // sipp echoes what the page sends, through the survivor
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // every check of the scenario held, and nothing more reached sipp
	checkLostAcked(t, s)
	e.waitNoTerminations()
	e.checkGone(p)
}

// The far end delays its answer to the owner's session refresh and the owner is lost
// meanwhile. The survivor's re-INVITE, a refresh too, meets 491, is retried after RFC
// 3261 section 14.1's wait, the lost refresh's 200 is acknowledged, and the survivor
// goes on refreshing the session (interval and refresher kept).
func TestTakeoverDuringSessionRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover_pending_refresh.xml", seConfig)
	p := "players/renata/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	waitSippRequests(t, s, "INVITE", 2) // the owner's refresh, which sipp leaves unanswered
	_, survivor := e.killOwner(p, inst)

	after := e.waitMoved(p, before["mgw_url"])
	if after["call_id"] != before["call_id"] || after["player_state"] != "connected" || after["hold"] != "" {
		t.Fatalf("after the takeover: %v (before %v)", after, before)
	}
	if now, _ := e.callOwner(p); now != survivor {
		t.Fatalf("claim held by %s after the takeover, want %s", now, survivor)
	}
	waitSippRequests(t, s, "INVITE", 5) // the survivor's own refresh
	m := attachMedia(t, after["mgw_url"])
	defer m.close()
	m.waitReceived(t, 25)
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	checkLostAcked(t, s)
	e.waitNoTerminations()
	e.checkGone(p)
}
