package users

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/internal/siptest"
	"dsmgw/asadapter/sipport"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestRegisterDigestRefreshLogout: sipp as the registrar (reached as the outbound proxy)
// challenges every REGISTER with 401 and checks the digest (realm, nonce, uri, response,
// verified with the password); it grants 2 s, so the adapter must refresh; DELETE logs
// out with Expires: 0. The DSM shows registering → registered → unregistered.
func TestRegisterDigestRefreshLogout(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_digest.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen,
		Args: []string{"-m", "1", "-trace_logs", "-log_file", "sipp-logs.log"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{}, "")

	code, body := r.call(t, "POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", AuthUser: "alice", Password: "secret", Client: "CLIENTKEY1", Display: "Alice",
	})
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := r.u.schema.Users.Fields
	obj := r.u.schema.UserAddress("alice")
	r.waitFields(t, obj, "registered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegRegistered })
	fields := r.waitFields(t, obj, "sip_uri", func(m map[string]string) bool {
		return m[f.SipURI] == "sip:alice@dsmgw.test"
	})
	if _, ok := fields[f.RegistrationError]; ok {
		t.Fatalf("registration_error set: %v", fields)
	}
	// The browser's client key is the Directory's, not the DSM's: a page can read
	// users/alice, and must not learn another page's key.
	if _, ok := fields[legacyClientField]; ok {
		t.Fatalf("users/alice shows the client key: %v", fields)
	}
	if c, err := r.u.ClientOf(t.Context(), "alice"); err != nil || c != "CLIENTKEY1" {
		t.Fatalf("ClientOf: %q %v", c, err)
	}
	if u, err := r.u.UserOf(t.Context(), "CLIENTKEY1"); err != nil || u != "alice" {
		t.Fatalf("UserOf: %q %v", u, err)
	}
	idx := r.waitFields(t, r.u.schema.Users.Index, "users index", func(m map[string]string) bool { return m["alice"] != "" })
	if idx["alice"] != "Alice" {
		t.Fatalf("users index: %v", idx)
	}
	// Granted 2 s: two refreshes (each challenged and answered again) follow on their own.
	waitCounter(t, r.u.met.registers.WithLabelValues("ok"), 3, "successful REGISTERs")
	if code, body := r.call(t, "GET", "/v1/users/alice/register", usersTestSecret, nil); code != 200 || !strings.Contains(body, `"registered"`) {
		t.Fatalf("GET: %d %s", code, body)
	}

	if code, body := r.call(t, "DELETE", "/v1/users/alice/register", usersTestSecret, nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	r.waitFields(t, obj, "unregistered", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegUnregistered
	})
	if c, err := r.u.ClientOf(t.Context(), "alice"); err != nil || c != "" {
		t.Fatalf("ClientOf after logout: %q %v", c, err)
	}
	if u, err := r.u.UserOf(t.Context(), "CLIENTKEY1"); err != nil || u != "" {
		t.Fatalf("UserOf after logout: %q %v", u, err)
	}
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp registrar: exit %d, %v (a check of the digest or of Expires: 0 failed)", rc, err)
	}
	logs, _ := os.ReadFile(filepath.Join(sipp.Dir, "sipp-logs.log"))
	if !strings.Contains(string(logs), "UNREGISTERED after") {
		t.Fatalf("sipp did not see the un-REGISTER: %s", logs)
	}
	// The record is gone and no instance holds the user any more.
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := r.st.Redis().Exists(t.Context(), r.u.keys.record("alice"), r.u.keys.lease("alice")).Result()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("record or lease left after logout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRegisterRejected: a registrar that refuses the credentials leaves the user failed
// with the reason written for the browser.
func TestRegisterRejected(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_digest.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Args: []string{"-m", "1"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{RetryMin: time.Minute}, "")
	code, body := r.call(t, "POST", "/v1/users/bob/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", AuthUser: "alice", Password: "wrong", Client: "CLIENTKEY2",
	})
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := r.u.schema.Users.Fields
	m := r.waitFields(t, r.u.schema.UserAddress("bob"), "failed", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegFailed
	})
	if m[f.RegistrationError] != "403 Wrong Digest" {
		t.Fatalf("registration_error %q", m[f.RegistrationError])
	}
}

// TestRegisterSessionExpires: a session the web server stops refreshing ends like a
// logout: un-REGISTER (Expires: 0, checked by the registrar) and state unregistered.
func TestRegisterSessionExpires(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_plain.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Args: []string{"-m", "1"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{}, "")
	if code, body := r.call(t, "POST", "/v1/users/carl/register", usersTestSecret, RegisterRequest{
		// Four seconds: longer than the 2 s scan that claims a user whose wake-up was
		// missed (at start the wake-up subscription may not be up yet), so the user is
		// always registered before the session ends.
		SIPURI: "sip:carl@dsmgw.test", Client: "K9", TTLSeconds: 4}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := r.u.schema.Users.Fields
	obj := r.u.schema.UserAddress("carl")
	// "registered" may be gone before a poll could see it, so the op log is what proves
	// the order.
	r.waitHistory(t, obj, f.Registration, sipport.RegRegistered, sipport.RegUnregistered)
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp registrar: exit %d, %v", rc, err)
	}
}

// TestRegisterNoResponse: a registrar that does not answer leaves the user failed (after
// one quiet retry) with the reason for the browser.
func TestRegisterNoResponse(t *testing.T) {
	t.Parallel()
	silent := "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
	r := startUsers(t, siptest.New(t, silent), Config{RequestTimeout: 500 * time.Millisecond,
		RetryMin: 100 * time.Millisecond}, "")
	if code, body := r.call(t, "POST", "/v1/users/dora/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:dora@dsmgw.test", Client: "K8"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := r.u.schema.Users.Fields
	m := r.waitFields(t, r.u.schema.UserAddress("dora"), "failed", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegFailed
	})
	if m[f.RegistrationError] != "no response from the registrar" {
		t.Fatalf("registration_error %q", m[f.RegistrationError])
	}
	if v := metricValue(r.u.met.registers.WithLabelValues("error")); v < 2 {
		t.Fatalf("REGISTER errors %v, want the quiet retry too", v)
	}
}

// redisHolds reports the first key of Redis whose name or value contains s, as
// "<key>" or "" when none does; prefix limits the scan to keys starting with it.
func redisHolds(t *testing.T, rdb redis.UniversalClient, prefix, s string) string {
	t.Helper()
	ctx := t.Context()
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var vals []string
		typ, _ := rdb.Type(ctx, k).Result()
		switch typ {
		case "string":
			v, _ := rdb.Get(ctx, k).Result()
			vals = []string{v}
		case "hash":
			m, _ := rdb.HGetAll(ctx, k).Result()
			for f, v := range m {
				vals = append(vals, f, v)
			}
		case "list":
			vals, _ = rdb.LRange(ctx, k, 0, -1).Result()
		case "set":
			vals, _ = rdb.SMembers(ctx, k).Result()
		case "zset":
			vals, _ = rdb.ZRange(ctx, k, 0, -1).Result()
		case "stream":
			msgs, _ := rdb.XRange(ctx, k, "-", "+").Result()
			for _, m := range msgs {
				for f, v := range m.Values {
					vals = append(vals, f, fmt.Sprint(v))
				}
			}
		default:
			t.Fatalf("key %s of type %q: the scan does not know it", k, typ)
		}
		if strings.Contains(k, s) {
			return k
		}
		for _, v := range vals {
			if strings.Contains(v, s) {
				return k
			}
		}
	}
	return ""
}

// TestNoSecretsInRedis: after registration, refreshes and logout, no key or value in
// Redis holds the SIP password in plain text, and no DSM key (which pages read) holds the
// browser's client key.
func TestNoSecretsInRedis(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_digest.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Args: []string{"-m", "1"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{}, "")
	const password, client = "secret", "CLIENTKEYSCAN"
	check := func(when string) {
		t.Helper()
		if k := redisHolds(t, r.st.Redis(), "", password); k != "" {
			t.Fatalf("%s: %s holds the SIP password", when, k)
		}
		if k := redisHolds(t, r.st.Redis(), "dsm:", client); k != "" {
			t.Fatalf("%s: DSM key %s holds the client key", when, k)
		}
	}
	code, body := r.call(t, "POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", AuthUser: "alice", Password: password, Client: client, Display: "Alice",
	})
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := r.u.schema.Users.Fields
	r.waitFields(t, r.u.schema.UserAddress("alice"), "registered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegRegistered })
	check("registered")
	waitCounter(t, r.u.met.registers.WithLabelValues("ok"), 3, "successful REGISTERs") // two refreshes
	check("refreshed")
	if code, body := r.call(t, "DELETE", "/v1/users/alice/register", usersTestSecret, nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	r.waitFields(t, r.u.schema.UserAddress("alice"), "unregistered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegUnregistered })
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp registrar: exit %d, %v (the digest with the opened password failed?)", rc, err)
	}
	check("logged out")
}

// TestRegisterServiceTags: the REGISTER's Contact carries the feature tags of the
// services the user's page offers (users/<user> services), checked by sipp with regular
// expressions; when the page starts offering push-to-talk the user registers again at
// once with the MCPTT tag and both ICSIs.
func TestRegisterServiceTags(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_services.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Args: []string{"-m", "1"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{}, "")
	if code, body := r.call(t, "POST", "/v1/users/tess/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:tess@dsmgw.test", Client: "K7"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := r.u.schema.Users.Fields
	obj := r.u.schema.UserAddress("tess")
	r.waitFields(t, obj, "registered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegRegistered })
	waitCounter(t, r.u.met.registers.WithLabelValues("ok"), 1, "the first REGISTER")
	// The page offers push-to-talk now, as ptt.js writes it.
	if _, err := r.st.Commit(t.Context(), store.Commit{Obj: obj, Client: "browser/K7", Base: -1,
		Ops: []store.Op{store.Set(f.Services, "mmtel poc")}}); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, r.u.met.registers.WithLabelValues("ok"), 2, "the REGISTER with the new tags")
	if code, body := r.call(t, "DELETE", "/v1/users/tess/register", usersTestSecret, nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp registrar: exit %d, %v (a Contact without the expected tags fails its check)", rc, err)
	}
}
