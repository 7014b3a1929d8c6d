package asadapter

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// After a takeover the survivor drives the call as its own: digits the page writes leave
// its media gateway as RFC 4733 events toward the far end's media address (a UDP socket
// of the test), and the page's hold and resume are re-INVITEs with a=sendonly and then
// a=sendrecv, sent by the survivor in the same dialog (sipp's scenario checks the
// directions; the test checks the dialog and the Contact).
func TestTakeoverKeepsDTMFAndHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	path, err := filepath.Abs("testdata/takeover_dtmf_hold.xml")
	if err != nil {
		t.Fatal(err)
	}
	s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path,
		Args: []string{"-m", "1", "-key", "rtpport", strconv.Itoa(far.LocalAddr().(*net.UDPAddr).Port)}})
	s, inst, target := e.behindProxy(t, s)
	p := "players/tess/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	owner, _ := e.callOwner(p)
	survivor := "gw1"
	if owner == "gw1" {
		survivor = "gw2"
	}
	inst[owner].kill()
	e.waitMoved(p, before["mgw_url"])
	if now, _ := e.callOwner(p); now != survivor {
		t.Fatalf("call owned by %s after the takeover, want %s", now, survivor)
	}

	e.browser(p, store.Set("dtmf", "1#"))
	e.waitField(p, "dtmf", "")
	evs := readTelephoneEvents(t, far, 96, 2)
	var digits []uint8
	for i, ev := range evs {
		if i == 0 || evs[i-1].end && ev.event != evs[i-1].event {
			digits = append(digits, ev.event)
		}
	}
	if len(digits) != 2 || digits[0] != 1 || digits[1] != 11 {
		t.Fatalf("telephone events %v from the survivor, want 1 then 11 (#)", digits)
	}

	e.browser(p, store.Set("hold_intent", "hold"))
	e.waitField(p, "hold", "local")
	e.browser(p, store.Del("hold_intent"))
	e.waitField(p, "hold", "")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)

	invites := sippRequests(t, s, "INVITE")
	if len(invites) != 4 {
		t.Fatalf("sipp received %d INVITEs, want the call's, the takeover's, hold and resume", len(invites))
	}
	first := invites[0]
	addr := inst[survivor].a.Addr("udp")
	for i, re := range invites[2:] {
		if re.hdr["call-id"] != first.hdr["call-id"] || tagOf(re.hdr["from"]) != tagOf(first.hdr["from"]) {
			t.Fatalf("re-INVITE %d outside the dialog:\nfirst %v\nre %v", i+3, first.hdr, re.hdr)
		}
		if !strings.Contains(re.hdr["contact"], addr) {
			t.Fatalf("re-INVITE %d Contact %q, want the survivor's %s", i+3, re.hdr["contact"], addr)
		}
	}
}
