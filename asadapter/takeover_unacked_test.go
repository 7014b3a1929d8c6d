package asadapter

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"dsmgw/store"
)

// An incoming call whose instance is lost after it saved the call confirmed and before
// its 200 went out: the caller never had the answer and still waits on its INVITE. The
// survivor finds the INVITE's Vias in the confirmed record (they stay until the ACK),
// re-INVITEs, and on the caller's 481 answers the INVITE 480 along them; the player
// shows what a call lost while ringing shows (docs/call-survival.md).
func TestTakeoverBeforeIncomingAnswerSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// gw1 stops between the confirmed save and the 200, until it is killed.
	reached := make(chan struct{})
	var once sync.Once
	hold := func(ctx context.Context) {
		once.Do(func() { close(reached) })
		<-ctx.Done()
	}
	inst, s, p := incomingViaKamailio(t, e, "fred", "incoming_unanswered_lost.xml", false,
		func(gw1 *instance) { gw1.a.beforeAnswer.Store(&hold) })
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	<-reached
	d, err := inst["gw1"].a.loadDialog(e.ctx, p)
	if err != nil || d.State != DialogConfirmed || len(d.InviteVias) == 0 {
		t.Fatalf("record before the 200: %+v (%v), want confirmed with the INVITE's Vias", d, err)
	}
	inst["gw1"].kill()

	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" || fl["sip_status"] != "480" || fl["sip_reason"] != reasonInstanceLost {
		t.Fatalf("after the takeover of an unanswered call: %v", fl)
	}
	waitSipp(t, s) // the re-INVITE came in the dialog, then the 480 to the INVITE
	// The survivor's re-INVITE (the proxy may have retransmitted it before sipp's 481).
	invites := sippRequests(t, s, "INVITE")
	if len(invites) == 0 {
		t.Fatal("the caller received no re-INVITE")
	}
	for _, re := range invites {
		if !containsAddr(re.hdr["contact"], inst["gw2"].a.Addr("udp")) || re.hdr["cseq"] != invites[0].hdr["cseq"] {
			t.Fatalf("INVITEs the caller received: %v, want the survivor's re-INVITE", invites)
		}
	}
	e.waitNoTerminations()
	e.checkGone(p)
}

// The INVITE's Vias leave the record once the caller's ACK came (nobody may answer that
// INVITE again), and a call taken over after that goes on as before.
func TestIncomingCallDropsInviteViasOnceAcked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	inst, s, p := incomingViaKamailio(t, e, "gwen", "incoming_takeover.xml", true, nil)
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	before := e.waitField(p, "mgw_state", "connected")
	// sipp ACKs the 200 at once; gw1 then saves the record without the Vias.
	deadline := time.Now().Add(waitFor)
	for {
		d, err := inst["gw1"].a.loadDialog(e.ctx, p)
		if err == nil && d.State == DialogConfirmed && len(d.InviteVias) == 0 && d.InviteSource == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("record after the ACK: %+v (%v), want confirmed without the INVITE's Vias", d, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	inst["gw1"].kill()
	after := e.waitMoved(p, before["mgw_url"])
	if after["call_id"] != before["call_id"] || after["player_state"] != "connected" {
		t.Fatalf("after takeover: %v (before %v)", after, before)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

// containsAddr reports whether a header value names addr ("host:port").
func containsAddr(v, addr string) bool { return addr != "" && strings.Contains(v, addr) }
