package asadapter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"dsmgw/asadapter/sipport"
	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// usersTestSecret is the bearer secret of the registration API in these tests.
const usersTestSecret = "s3cret-for-tests"

// usersRig is the users side running on an Adapter, with its HTTP API served.
type usersRig struct {
	a    *Adapter
	u    *users.Users
	st   *store.Store
	reg  *prometheus.Registry
	http *httptest.Server
	// kill ends the instance as a crash looks from outside (the adapter's and the users
	// side's Run end; no BYE, no unsubscribe) and waits for both; safe to call twice.
	kill func()
}

// startUsersOnAdapter wires Users to a real Adapter the way cmd/gateway does: the
// Adapter's UA sends, its NOTIFY handler is Users.HandleNotify, both run on one store.
func startUsersOnAdapter(t *testing.T, e *env, acfg Config, ucfg users.Config) *usersRig {
	t.Helper()
	if acfg.Instance == "" {
		acfg.Instance = "gw1"
	}
	if acfg.ListenUDP == "" {
		acfg.ListenUDP = "127.0.0.1:0"
	}
	if acfg.Edge.Trusted == nil {
		acfg.Edge.Trusted = []string{"127.0.0.1"} // the peers of these tests (see env.adapter)
	}
	a, err := New(acfg, e.st, e.feed, NewMediaGatewayClient(e.mgwc, acfg.Instance, ""), prometheus.NewRegistry(),
		e.log.With("instance", acfg.Instance))
	if err != nil {
		t.Fatal(err)
	}
	ucfg.Instance, ucfg.Secret = a.Instance(), usersTestSecret
	reg := prometheus.NewRegistry()
	u, err := users.New(ucfg, a, e.st, e.feed, reg, e.log)
	if err != nil {
		t.Fatal(err)
	}
	a.OnRequest(sip.NOTIFY, u.HandleNotify)
	a.UseUsers(u)
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
			cancel()
			<-done
			t.Fatal("adapter not serving UDP")
		}
	}
	go func() { _ = u.Run(ctx); done <- struct{}{} }()
	hs := httptest.NewServer(u.HTTPHandler())
	var once sync.Once
	kill := func() { once.Do(func() { cancel(); <-done; <-done }) }
	t.Cleanup(func() { hs.Close(); kill() })
	return &usersRig{a: a, u: u, st: e.st, reg: reg, http: hs, kill: kill}
}

// call makes a registration API request and returns the status and body.
func (r *usersRig) call(t *testing.T, method, path string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.http.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+usersTestSecret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitFields polls an object until ok accepts its fields; the deadline is only a failure
// bound.
func (r *usersRig) waitFields(t *testing.T, obj string, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := r.st.Snapshot(context.Background(), obj)
		if err == nil && ok(snap.Fields) {
			return snap.Fields
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached; fields %v (err %v)", obj, what, snap.Fields, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// registers reads the REGISTER outcome counter of result from the users side's registry.
func (r *usersRig) registers(result string) float64 {
	mfs, err := r.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != "asadapter_register_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitRegisters polls the REGISTER outcome counter of result until it reaches at least n.
func (r *usersRig) waitRegisters(t *testing.T, result string, n float64, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for r.registers(result) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v < %v", what, r.registers(result), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsersOnAdapter: registration with digest and a conference subscription through the
// call controller's user agent (the production wiring), against sipp as registrar and as
// conference server.
func TestUsersOnAdapter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	regScen, _ := filepath.Abs("users/testdata/register/registrar_digest.xml")
	confScen, _ := filepath.Abs("users/testdata/confinfo/notifier.xml")
	registrar := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: regScen, Args: []string{"-m", "1"}})
	confSrv := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: confScen, Args: []string{"-m", "1"}})
	r := startUsersOnAdapter(t, e, Config{}, users.Config{
		Registrar: "sip:" + registrar.Addr, ConferenceDomain: confSrv.Addr,
	})
	schema := e.st.Schema()
	f := schema.Users.Fields
	userObj := schema.UserAddress("alice")
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: userObj, Base: -1,
		Ops: []store.Op{store.Set(f.Conferences, "conf1")}}); err != nil {
		t.Fatal(err)
	}
	if code, body := r.call(t, "POST", "/v1/users/alice/register", users.RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", AuthUser: "alice", Password: "secret", Client: "K1"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	r.waitFields(t, userObj, "registered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegRegistered })
	confObj := schema.ConferenceAddress("alice", "conf1")
	r.waitFields(t, confObj, "partial state applied", func(m map[string]string) bool {
		_, alice := m["sip:alice@example.com"]
		return m["sip:carol@example.com"] != "" && !alice
	})
	r.waitRegisters(t, "ok", 2, "a refresh")
	if code, body := r.call(t, "DELETE", "/v1/users/alice/register", nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	r.waitFields(t, userObj, "unregistered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegUnregistered })
	waitSipp(t, registrar)
	waitSipp(t, confSrv)
}
