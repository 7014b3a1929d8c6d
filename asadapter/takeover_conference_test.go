package asadapter

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// guestOf returns the participant of a conference list that the focus of
// conf_focus_takeover.xml names after its subscription ("sip:guestN@example.com"), or "".
func guestOf(list map[string]string) string {
	for k := range list {
		if strings.HasPrefix(k, "sip:guest") {
			return k
		}
	}
	return ""
}

// A conference leg survives the loss of its instance like any call, and so does the
// conference's participant list: the user (registered through Kamailio, with the
// conference in its list) joins a focus behind Kamailio with Record-Route; the instance
// that holds the user (and so places the leg and holds the conference subscription) is
// lost. The survivor re-INVITEs the leg in the same dialog and the media flows through it;
// the users side of the survivor takes the user over once its lease lapsed, registers it
// and subscribes to the conference anew, and the participant list in the DSM shows the
// new subscription's state (docs/call-survival.md, "Conference legs").
func TestTakeoverContinuesConferenceLeg(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path, err := filepath.Abs("testdata/conf_focus_takeover.xml")
	if err != nil {
		t.Fatal(err)
	}
	// Three sipp calls: the leg, the lost instance's subscription and the survivor's.
	focus := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, RTPEcho: true, Args: []string{"-m", "3"}})
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ConfDomain: "conf.test", ConfServer: "sip:" + focus.Addr})
	rigs := map[string]*usersRig{}
	for _, name := range []string{"gw1", "gw2"} {
		// The leases of env.adapter (3 s for calls) and as short for users: the user's
		// registration and subscriptions move a few seconds after the call.
		rigs[name] = startUsersOnAdapter(t, e, Config{Instance: name, OutboundProxy: k.URI("udp"),
			ConferenceDomain: "conf.test", ClaimTTL: 3 * time.Second, Rescan: 300 * time.Millisecond,
			InviteTimeout: 10 * time.Second},
			users.Config{ConferenceDomain: "conf.test", LeaseTTL: 3 * time.Second, Scan: 200 * time.Millisecond})
	}
	schema := e.st.Schema()
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: schema.UserAddress("cleo"), Base: -1,
		Ops: []store.Op{store.Set(schema.Users.Fields.Conferences, "conf1")}}); err != nil {
		t.Fatal(err)
	}
	registerUsers(t, e, rigs["gw1"], rigs["gw1"].a, "cleo")
	confObj := schema.ConferenceAddress("cleo", "conf1")
	list := rigs["gw1"].waitFields(t, confObj, "the focus's participant list", func(m map[string]string) bool {
		return guestOf(m) != ""
	})
	first := guestOf(list)
	b, ok, err := rigs["gw1"].u.Binding(e.ctx, "cleo")
	if err != nil || !ok {
		t.Fatalf("binding of cleo: %+v %v %v", b, ok, err)
	}
	holder, survivor := b.Instance, "gw1"
	if holder == "gw1" {
		survivor = "gw2"
	}

	// The page joins: a conference id, no remote.
	p := "players/Kcleo/audio"
	e.browser(p, store.Set("service", "mmtel"), store.Set("conference", "conf1"),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting"))
	before := e.waitField(p, "mgw_state", "connected")
	if owner, _ := e.callOwner(p); owner != holder {
		t.Fatalf("leg placed by %s, want %s, which holds the user", owner, holder)
	}
	m := attachMedia(t, before["mgw_url"])
	m.waitReceived(t, 10) // the focus echoes what the page sends

	rigs[holder].kill()
	after := e.waitMoved(p, before["mgw_url"])
	m.close()
	m = attachMedia(t, after["mgw_url"])
	defer m.close()
	m.waitReceived(t, 25)
	if owner, _ := e.callOwner(p); owner != survivor {
		t.Fatalf("leg held by %s after the takeover, want %s", owner, survivor)
	}
	if after["call_id"] != before["call_id"] || after["conference"] != "conf1" || after["player_state"] != "connected" {
		t.Fatalf("after the takeover: %v (before %v)", after, before)
	}
	invites := sippRequests(t, focus, "INVITE")
	if len(invites) != 2 {
		t.Fatalf("the focus received %d INVITEs, want the leg's and the takeover's", len(invites))
	}
	if invites[1].hdr["call-id"] != invites[0].hdr["call-id"] || tagOf(invites[1].hdr["from"]) != tagOf(invites[0].hdr["from"]) {
		t.Fatalf("takeover re-INVITE outside the leg's dialog:\nfirst %v\nre %v", invites[0].hdr, invites[1].hdr)
	}
	if want := rigs[survivor].a.Addr("udp"); !strings.Contains(invites[1].hdr["contact"], want) {
		t.Fatalf("re-INVITE Contact %q, want the survivor's %s", invites[1].hdr["contact"], want)
	}

	// The participant list: the survivor's users side subscribes anew, and the list shows
	// that subscription's state in place of the lost one's.
	list = rigs[survivor].waitFields(t, confObj, "the new subscription's participant list", func(m map[string]string) bool {
		g := guestOf(m)
		return g != "" && g != first
	})
	if _, stale := list[first]; stale {
		t.Fatalf("participant list %v still shows %s, of the lost instance's subscription", list, first)
	}

	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, focus) // the leg's BYE came from the survivor, both subscriptions were served
}
