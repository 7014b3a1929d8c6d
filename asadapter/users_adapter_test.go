package asadapter

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// startUsersOnAdapter wires Users to a real Adapter the way cmd/gateway does: the
// Adapter's UA sends, its NOTIFY handler is Users.HandleNotify, both run on one store.
func startUsersOnAdapter(t *testing.T, e *env, acfg Config, ucfg UsersConfig) *usersRig {
	t.Helper()
	acfg.Instance, acfg.ListenUDP = "gw1", "127.0.0.1:0"
	a, err := New(acfg, e.st, e.feed, NewMediaGatewayClient(e.mgwc, "gw1", ""), prometheus.NewRegistry(), e.log)
	if err != nil {
		t.Fatal(err)
	}
	ucfg.Instance, ucfg.Secret = a.Instance(), usersTestSecret
	reg := prometheus.NewRegistry()
	u, err := NewUsers(ucfg, a, e.st, e.feed, reg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	a.OnRequest(sip.NOTIFY, u.HandleNotify)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{}, 2)
	go func() { _ = a.Run(ctx); done <- struct{}{} }()
	// Users sends through the Adapter's listener, which its transport layer takes in Run.
	ua, _ := a.SIP()
	for deadline := time.Now().Add(waitFor); ; time.Sleep(time.Millisecond) {
		if c, err := ua.TransportLayer().GetConnection("udp", a.Addr("udp")); err == nil && c != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("adapter not serving UDP")
		}
	}
	go func() { _ = u.Run(ctx); done <- struct{}{} }()
	hs := httptest.NewServer(u.HTTPHandler())
	stop := func() { cancel(); <-done; <-done }
	t.Cleanup(func() { hs.Close(); stop() })
	return &usersRig{u: u, st: e.st, reg: reg, http: hs, stop: stop}
}

// TestUsersOnAdapter: registration with digest and a conference subscription through the
// call controller's user agent (the production wiring), against sipp as registrar and as
// conference server.
func TestUsersOnAdapter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	regScen, _ := filepath.Abs("testdata/register/registrar_digest.xml")
	confScen, _ := filepath.Abs("testdata/confinfo/notifier.xml")
	registrar := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: regScen, Args: []string{"-m", "1"}})
	confSrv := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: confScen, Args: []string{"-m", "1"}})
	r := startUsersOnAdapter(t, e, Config{}, UsersConfig{
		Registrar: "sip:" + registrar.Addr, ConferenceDomain: confSrv.Addr,
	})
	f := r.u.schema.Users.Fields
	userObj := r.u.schema.UserAddress("alice")
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: userObj, Base: -1,
		Ops: []store.Op{store.Set(f.Conferences, "conf1")}}); err != nil {
		t.Fatal(err)
	}
	if code, body := r.call(t, "POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", AuthUser: "alice", Password: "secret", Client: "K1"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	r.waitFields(t, userObj, "registered", func(m map[string]string) bool { return m[f.Registration] == RegRegistered })
	confObj := r.u.schema.ConferenceAddress("alice", "conf1")
	r.waitFields(t, confObj, "partial state applied", func(m map[string]string) bool {
		_, alice := m["sip:alice@example.com"]
		return m["sip:carol@example.com"] != "" && !alice
	})
	waitCounter(t, r.u.met.registers.WithLabelValues("ok"), 2, "a refresh")
	if code, body := r.call(t, "DELETE", "/v1/users/alice/register", usersTestSecret, nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	r.waitFields(t, userObj, "unregistered", func(m map[string]string) bool { return m[f.Registration] == RegUnregistered })
	waitSipp(t, registrar)
	waitSipp(t, confSrv)
}
