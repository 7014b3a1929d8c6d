package users

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dsmgw/asadapter/internal/siptest"
	"dsmgw/asadapter/sipport"
	"dsmgw/internal/testpeer"
)

func (r *usersRig) holds(user string) bool {
	r.u.mu.Lock()
	defer r.u.mu.Unlock()
	_, ok := r.u.workers[user]
	return ok
}

func sippLog(t *testing.T, s *testpeer.Sipp) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sipp-logs.log"))
	return string(b)
}

// TestRegisterOneInstance: two instances on one Redis; a registration is held and sent by
// exactly one. When that one shuts down, the other takes the user over and registers,
// removing the first one's contact in the same REGISTER.
func TestRegisterOneInstance(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_takeover.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen,
		Args: []string{"-m", "2", "-trace_logs", "-log_file", "sipp-logs.log"}})
	redis := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	cfg := Config{Scan: 200 * time.Millisecond}
	a := startUsers(t, siptest.New(t, sipp.Addr), cfg, redis.Addr)
	b := startUsers(t, siptest.New(t, sipp.Addr), cfg, redis.Addr)

	if code, body := a.call(t, "POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", Client: "K1"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	f := a.u.schema.Users.Fields
	obj := a.u.schema.UserAddress("alice")
	a.waitFields(t, obj, "registered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegRegistered })
	// Let both instances scan a few times: the user stays with its holder.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if a.holds("alice") == b.holds("alice") {
			t.Fatalf("holders: a %v, b %v", a.holds("alice"), b.holds("alice"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok := func(r *usersRig) float64 { return metricValue(r.u.met.registers.WithLabelValues("ok")) }
	if ok(a)+ok(b) != 1 {
		t.Fatalf("REGISTERs sent: a %v, b %v", ok(a), ok(b))
	}
	holder, other := a, b
	if b.holds("alice") {
		holder, other = b, a
	}
	holder.stop()
	waitCounter(t, other.u.met.registers.WithLabelValues("ok"), 1, "REGISTER by the taker")
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp: exit %d, %v", rc, err)
	}
	if l := sippLog(t, sipp); !strings.Contains(l, "STALE CONTACT REMOVED") {
		t.Fatalf("the taker did not remove the old contact: %q", l)
	}
	other.waitFields(t, obj, "still registered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegRegistered })
}

// TestRegisterTakeoverAfterCrash: the user's lease is held by an instance that died (its
// lease runs out, nobody renews it) and that left its contact in the record; once the
// lease expires, a live instance takes the user over and registers, removing the dead
// instance's contact.
func TestRegisterTakeoverAfterCrash(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_takeover.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen,
		Args: []string{"-m", "1", "-trace_logs", "-log_file", "sipp-logs.log"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{Scan: 200 * time.Millisecond}, "")
	ctx := context.Background()
	rdb := r.st.Redis()
	if err := rdb.Set(ctx, r.u.keys.lease("alice"), "dead-instance/1", 1500*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if code, body := r.call(t, "POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:alice@dsmgw.test", Client: "K1"}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	// What the dead holder had written after its last REGISTER.
	if err := rdb.HSet(ctx, r.u.keys.record("alice"), recContact, "sip:alice@127.0.0.1:9", recCallID, "dead-call").Err(); err != nil {
		t.Fatal(err)
	}
	f := r.u.schema.Users.Fields
	r.waitFields(t, r.u.schema.UserAddress("alice"), "registered", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegRegistered
	})
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp: exit %d, %v", rc, err)
	}
	if l := sippLog(t, sipp); !strings.Contains(l, "sip:alice@127.0.0.1:9>;expires=0") {
		t.Fatalf("the dead instance's contact was not removed: %q", l)
	}
	rec, err := r.u.loadRecord(ctx, "alice")
	if err != nil || rec == nil || rec.Contact == "sip:alice@127.0.0.1:9" || rec.CallID == "dead-call" {
		t.Fatalf("record not taken over: %+v %v", rec, err)
	}
}
