package asadapter

import (
	"strings"
	"testing"

	"dsmgw/asadapter/sipport"
	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// registerUsers registers web users through the rig's API with the test CSCF's password,
// each logged in from the browser with client key "K"+user, and waits until call control
// sees them registered.
func registerUsers(t *testing.T, e *env, r *usersRig, a *Adapter, names ...string) {
	t.Helper()
	for _, u := range names {
		if code, body := r.call(t, "POST", "/v1/users/"+u+"/register", users.RegisterRequest{
			SIPURI: "sip:" + u + "@dsmgw.test", AuthUser: u, Password: testpeer.KamailioPassword,
			Client: "K" + u, Display: strings.ToUpper(u[:1]) + u[1:]}); code != 202 {
			t.Fatalf("POST %s: %d %s", u, code, body)
		}
	}
	f := e.st.Schema().Users.Fields
	for _, u := range names {
		r.waitFields(t, e.st.Schema().UserAddress(u), "registered", func(m map[string]string) bool {
			return m[f.Registration] == sipport.RegRegistered
		})
		waitIdentity(t, a, "K"+u, true)
	}
}

// TestCallBetweenTwoUsersOfOneGateway: a gateway is a back-to-back agent for many users. A
// call from one web user to another registered on the same instance goes out through the
// CSCF and comes back to the same user agent with the same Call-ID: it rings the callee's
// page with the caller's identity, is answered, and either side's BYE ends both legs. (It
// was once refused with 482 Loop Detected, taken for a merged request.)
func TestCallBetweenTwoUsersOfOneGateway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := testpeer.StartKamailio(t)
	r := startUsersOnAdapter(t, e, Config{OutboundProxy: k.URI("udp")}, users.Config{})
	registerUsers(t, e, r, r.a, "ann", "ben")
	caller, callee := "players/Kann/audio", "players/Kben/audio"

	for round, hangsUp := range []string{caller, callee} {
		e.dial(caller, "sip:ben@dsmgw.test")
		fl := e.waitField(callee, "player_state", "ringing")
		if !strings.Contains(fl["caller"], "sip:ann@dsmgw.test") || !strings.HasPrefix(fl["caller"], "Ann ") {
			t.Fatalf("round %d: callee's caller id %q, want Ann <sip:ann@dsmgw.test>", round, fl["caller"])
		}
		if fl := e.fields(caller); fl["progress"] == "" && fl["mgw_state"] != "connecting" {
			t.Fatalf("round %d: caller while ringing: %v", round, fl)
		}
		e.browser(callee, store.Set("player_state", "connecting"))
		e.waitField(callee, "mgw_state", "connected")
		e.waitField(caller, "mgw_state", "connected")
		other := callee
		if hangsUp == callee {
			other = caller
		}
		e.browser(hangsUp, store.Set("player_state", "disconnected"))
		e.waitField(hangsUp, "mgw_state", "disconnected")
		fl = e.waitField(other, "player_state", "disconnected")
		if fl["mgw_state"] != "disconnected" {
			t.Fatalf("round %d: the other side after the BYE: %v", round, fl)
		}
		e.waitNoTerminations()
	}
}

// TestUsersCallsGoToTheInstanceHoldingTheRegistration: with two instances, a registered
// user's call is placed by the instance that registered the user, whichever sees the
// page's write first: its Contact is the one registered there, where the far end's
// in-dialog requests will arrive.
func TestUsersCallsGoToTheInstanceHoldingTheRegistration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := testpeer.StartKamailio(t)
	phone := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "bob", Registrar: k.Addr})
	waitRegistered(t, phone)
	rigs := map[string]*usersRig{}
	for _, name := range []string{"gw1", "gw2"} {
		rigs[name] = startUsersOnAdapter(t, e, Config{Instance: name, OutboundProxy: k.URI("udp")}, users.Config{})
	}
	registerUsers(t, e, rigs["gw1"], rigs["gw1"].a, "cleo")
	waitIdentity(t, rigs["gw2"].a, "Kcleo", true)
	b, ok, err := rigs["gw1"].u.Binding(e.ctx, "cleo")
	if err != nil || !ok {
		t.Fatalf("binding of cleo: %+v %v %v", b, ok, err)
	}
	for round := range 3 {
		p := "players/Kcleo/audio"
		e.dial(p, "sip:bob@dsmgw.test")
		e.waitField(p, "mgw_state", "connected")
		d, err := rigs[b.Instance].a.loadDialog(e.ctx, p)
		if err != nil || d.Owner != b.Instance || d.Contact != b.Contact.String() || d.User != "cleo" {
			t.Fatalf("round %d: dialog %+v (%v), want owned by %s with contact %s", round, d, err, b.Instance, b.Contact.String())
		}
		e.browser(p, store.Set("player_state", "disconnected"))
		e.waitField(p, "mgw_state", "disconnected")
		e.waitNoTerminations()
	}
}
