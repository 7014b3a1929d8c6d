package asadapter

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// traced returns the first message of the CSCF's trace that starts with first and holds
// every one of parts ("" when none does).
func traced(trace []string, first string, parts ...string) string {
	for _, m := range trace {
		_, msg, _ := strings.Cut(m, "\n")
		if !strings.HasPrefix(msg, first) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(msg, p)
		}
		if all {
			return msg
		}
	}
	return ""
}

// header returns the value of a header of a traced message.
func header(msg, name string) string {
	for _, l := range strings.Split(msg, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// TestCallChallengedWithTheUsersCredentials: Kamailio, as the CSCF, challenges every
// INVITE and BYE from the gateway's address with 407 and accepts only the From user's own
// credentials. A registered user's call to a phone succeeds: the INVITE and the BYE are
// answered with the user's credentials (not the gateway's SIP_AUTH_USER, which Kamailio
// refuses with 403 for another user), and both carry the user's registered Contact; the
// INVITE carries P-Preferred-Identity, which Kamailio turns into P-Asserted-Identity for
// the phone.
func TestCallChallengedWithTheUsersCredentials(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	gw := "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ChallengeFrom: gw})
	phone := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "bob", Registrar: k.Addr})
	waitRegistered(t, phone)
	r := startUsersOnAdapter(t, e, Config{ListenUDP: gw, OutboundProxy: k.URI("udp"),
		AuthUser: "dsmgw", AuthPassword: testpeer.KamailioPassword}, users.Config{})
	registerUsers(t, e, r, r.a, "web1")
	b, ok, err := r.u.Binding(context.Background(), "web1")
	if err != nil || !ok || b.Instance != "gw1" {
		t.Fatalf("binding of web1: %+v %v %v", b, ok, err)
	}
	contact := "<" + b.Contact.String() + ">"

	p := "players/Kweb1/audio"
	e.dial(p, "sip:bob@dsmgw.test")
	fl := e.waitField(p, "mgw_state", "connected")
	m := attachMedia(t, fl["mgw_url"])
	m.waitReceived(t, 10) // bob's tone: the call is up end to end
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	e.waitNoTerminations()

	trace := k.Trace(t)
	first := traced(trace, "INVITE sip:bob@dsmgw.test", "From: \"Web1\" <sip:web1@dsmgw.test>")
	invite := traced(trace, "INVITE sip:bob@dsmgw.test", "Proxy-Authorization:")
	bye := traced(trace, "BYE ", "Proxy-Authorization:")
	if first == "" || invite == "" || bye == "" {
		t.Fatalf("trace lacks the challenged INVITE, its answer or the BYE's answer:\n%s", strings.Join(trace, "\n\n"))
	}
	for name, msg := range map[string]string{"INVITE": invite, "BYE": bye} {
		if pa := header(msg, "Proxy-Authorization"); !strings.Contains(pa, `username="web1"`) {
			t.Errorf("%s Proxy-Authorization %q, want web1's", name, pa)
		}
		if c := header(msg, "Contact"); !sameContact(c, contact) {
			t.Errorf("%s Contact %q, want the registered %q", name, c, contact)
		}
	}
	for name, msg := range map[string]string{"first INVITE": first, "INVITE with credentials": invite} {
		if ppi := header(msg, "P-Preferred-Identity"); ppi != `"Web1" <sip:web1@dsmgw.test>` {
			t.Errorf("%s P-Preferred-Identity %q", name, ppi)
		}
		if c := header(msg, "Contact"); !sameContact(c, contact) || !strings.Contains(c, `+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`) {
			t.Errorf("%s Contact %q, want the registered %q with the MMTel feature tag", name, c, contact)
		}
	}
	t.Logf("the INVITE answered with web1's credentials, as Kamailio received it:\n%s", invite)
}

// sameContact reports whether a Contact header value names the registered contact: the
// same address; the parameters after it (the service's feature tags) may differ.
func sameContact(got, registered string) bool {
	addr := func(v string) string {
		if i := strings.IndexByte(v, '>'); i >= 0 {
			return v[:i+1]
		}
		return v
	}
	return addr(got) == addr(registered)
}
