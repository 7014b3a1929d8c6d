package asadapter

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/internal/siptest"
	"dsmgw/asadapter/sipport"
	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
)

// optionsVia sends OPTIONS for sip:<user>@dsmgw.test through the proxy and returns the
// status: the proxy answers 404 when the user has no binding, else it relays to the
// registered contact (the adapter, which answers).
func optionsVia(t *testing.T, peer *siptest.Port, user string) int {
	t.Helper()
	target := sip.Uri{Scheme: "sip", User: user, Host: "dsmgw.test"}
	req := sip.NewRequest(sip.OPTIONS, target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "prober", Host: "dsmgw.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", randHex(3))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: target, Params: sip.NewParams()})
	peer.PrepareRequest(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := peer.Client().Do(ctx, req)
	if err != nil {
		t.Fatalf("OPTIONS %s: %v", user, err)
	}
	return res.StatusCode
}

// TestRegisterThroughKamailio: a web user registers through Kamailio as the CSCF (the
// Adapter's outbound proxy), which challenges with 401 and checks the digest; the binding
// is then reachable through Kamailio, and gone after logout. Wrong credentials leave the
// user failed with Kamailio's answer.
func TestRegisterThroughKamailio(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := testpeer.StartKamailio(t)
	r := startUsersOnAdapter(t, e, Config{OutboundProxy: k.URI("udp")}, users.Config{RetryMin: time.Minute})
	prober := siptest.New(t, k.Addr)
	schema := e.st.Schema()
	f := schema.Users.Fields

	if code := optionsVia(t, prober, "web1"); code != 404 {
		t.Fatalf("OPTIONS before REGISTER: %d, want 404 from the proxy", code)
	}
	if code, body := r.call(t, "POST", "/v1/users/web1/register", users.RegisterRequest{
		SIPURI: "sip:web1@dsmgw.test", AuthUser: "web1", Password: testpeer.KamailioPassword, Client: "KWEB1"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	if code, body := r.call(t, "POST", "/v1/users/web2/register", users.RegisterRequest{
		SIPURI: "sip:web2@dsmgw.test", AuthUser: "web2", Password: "not-the-password", Client: "KWEB2"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	r.waitFields(t, schema.UserAddress("web1"), "registered", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegRegistered
	})
	if u, err := r.u.UserOf(t.Context(), "KWEB1"); err != nil || u != "web1" {
		t.Fatalf("the adapter's directory: KWEB1 is %q (%v), want web1", u, err)
	}
	m := r.waitFields(t, schema.UserAddress("web2"), "failed", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegFailed
	})
	if !strings.HasPrefix(m[f.RegistrationError], "401") {
		t.Fatalf("web2 registration_error %q, want Kamailio's 401", m[f.RegistrationError])
	}
	if code := optionsVia(t, prober, "web1"); code == 404 || code >= 500 {
		t.Fatalf("OPTIONS to the registered user: %d", code)
	}

	if code, body := r.call(t, "DELETE", "/v1/users/web1/register", nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	r.waitFields(t, schema.UserAddress("web1"), "unregistered", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegUnregistered
	})
	if code := optionsVia(t, prober, "web1"); code != 404 {
		t.Fatalf("OPTIONS after logout: %d, want 404 (binding removed)", code)
	}
}
