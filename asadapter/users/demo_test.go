package users

import (
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"dsmgw/asadapter/internal/siptest"
	"dsmgw/asadapter/sipport"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestDemoSignIn: in demo mode a page's write of sign_in in its own users/<user> object
// registers the user with the demo identity (sipp as the registrar checks the digest of
// alice with the demo password), with the writer's client key as the browser that gets
// the calls; a sign-out written by another browser leaves the registration alone, a write
// older than one handled already is ignored, and the page's own sign-out un-registers.
func TestDemoSignIn(t *testing.T) {
	t.Parallel()
	scen, _ := filepath.Abs("testdata/register/registrar_digest.xml")
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Args: []string{"-m", "1"}})
	r := startUsers(t, siptest.New(t, sipp.Addr), Config{DemoDomain: "dsmgw.test", DemoPassword: "secret"}, "")
	f := r.u.schema.Users.Fields
	obj := r.u.schema.UserAddress("alice")
	write := func(client string, seq int64, op store.Op) int64 {
		t.Helper()
		c, err := r.st.Commit(t.Context(), store.Commit{Obj: obj, Client: client, Seq: seq, Base: -1, Ops: []store.Op{op}})
		if err != nil {
			t.Fatal(err)
		}
		return c.Rev
	}

	// The page writes again every SessionTTL/2; here every second until one write has
	// been read (the feed reads from where it starts: a write before that is not seen).
	var rev int64
	seq := int64(0)
	for deadline := time.Now().Add(30 * time.Second); ; {
		seq++
		rev = write("PAGEKEY1", seq, store.Set(f.SignIn, strconv.FormatInt(seq, 10)))
		if waitClient(t, r.u, "alice", "PAGEKEY1", time.Second) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a demo sign-in never made a registration record")
		}
	}
	r.waitFields(t, obj, "registered", func(m map[string]string) bool {
		return m[f.Registration] == sipport.RegRegistered && m[f.SipURI] == "sip:alice@dsmgw.test"
	})
	if c, err := r.u.ClientOf(t.Context(), "alice"); err != nil || c != "PAGEKEY1" {
		t.Fatalf("ClientOf: %q %v", c, err)
	}
	r.waitFields(t, r.u.schema.Users.Index, "users index", func(m map[string]string) bool { return m["alice"] == "alice" })

	// Another browser's sign-out does not end the session of the page that signed in.
	other := write("PAGEKEY2", 1, store.Del(f.SignIn))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if v, _ := r.st.Redis().Get(t.Context(), r.u.keys.demoClaim("alice")).Int64(); v >= other {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other browser's sign-out was never handled")
		}
	}
	// A stale write (a revision handled already) changes nothing: handled inline, so its
	// effect would show at once.
	if err := r.u.handleSignIn(t.Context(), signIn{user: "alice", client: "PAGEKEY3", rev: rev, on: true}); err != nil {
		t.Fatal(err)
	}
	if c, err := r.u.ClientOf(t.Context(), "alice"); err != nil || c != "PAGEKEY1" {
		t.Fatalf("ClientOf after another browser's sign-out and a stale write: %q %v", c, err)
	}

	write("PAGEKEY1", seq+1, store.Del(f.SignIn))
	r.waitFields(t, obj, "unregistered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegUnregistered })
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp registrar: exit %d, %v (a check of the digest or of Expires: 0 failed)", rc, err)
	}
}

// TestDemoSignInOff: without a demo domain a sign_in write is nobody's business.
func TestDemoSignInOff(t *testing.T) {
	schema, err := store.LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	u := &Users{schema: schema}
	set := store.Set(u.schema.Users.Fields.SignIn, "1")
	if _, ok := u.demoWrite(store.Change{Obj: "users/alice", Client: "K", Rev: 1, Ops: []store.Op{set}}); ok {
		t.Fatal("a sign-in taken with the demo off")
	}
	u.cfg.DemoDomain = "dsmgw.test"
	for name, c := range map[string]store.Change{
		"no client":       {Obj: "users/alice", Rev: 1, Ops: []store.Op{set}},
		"conference list": {Obj: "users/alice/conf/c1", Client: "K", Rev: 1, Ops: []store.Op{set}},
		"other field":     {Obj: "users/alice", Client: "K", Rev: 1, Ops: []store.Op{store.Set("conferences", "c1")}},
		"resync":          {Kind: store.ChangeResync, Obj: "users/alice", Client: "K", Rev: 1},
	} {
		if _, ok := u.demoWrite(c); ok {
			t.Errorf("%s: taken for a sign-in", name)
		}
	}
	s, ok := u.demoWrite(store.Change{Obj: "users/alice", Client: "K", Rev: 7, Ops: []store.Op{set}})
	if !ok || s != (signIn{user: "alice", client: "K", rev: 7, on: true}) {
		t.Fatalf("sign-in: %+v %v", s, ok)
	}
}

// TestDemoUserName: only names that are a SIP user part as they are become demo users.
func TestDemoUserName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alice": true, "bob.smith": true, "a_b-c+d": true, "A1": true,
		"": false, "a@b": false, "a:b": false, "a b": false, "é": false,
		"x123456789x123456789x123456789x123456789x123456789x123456789abcde": false,
	} {
		if demoUserName(name) != ok {
			t.Errorf("%q: want %v", name, ok)
		}
	}
}

// waitClient waits up to d for user's record to name client.
func waitClient(t *testing.T, u *Users, user, client string, d time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := u.ClientOf(t.Context(), user); err == nil && c == client {
			return true
		}
	}
	return false
}

// TestDemoSignInLeavesSiteRegistration: a user the site registered through the API keeps
// that registration (its credentials and its browser) whatever a demo page of the same
// name writes, sign-in or sign-out.
func TestDemoSignInLeavesSiteRegistration(t *testing.T) {
	t.Parallel()
	// Nothing answers the REGISTERs: what is checked is the record alone.
	r := startUsers(t, siptest.New(t, "127.0.0.1:9"), Config{DemoDomain: "dsmgw.test", DemoPassword: "secret"}, "")
	site := &regRecord{SIPURI: "sip:alice@site.test", AuthUser: "alice1", Password: "site-pw", Client: "SITEKEY",
		Deadline: time.Now().Add(time.Hour)}
	if err := r.u.saveRecord(t.Context(), "alice", site); err != nil {
		t.Fatal(err)
	}
	for i, s := range []signIn{
		{user: "alice", client: "PAGEKEY", rev: 1, on: true},
		{user: "alice", client: "SITEKEY", rev: 2, on: false},
	} {
		if err := r.u.handleSignIn(t.Context(), s); err != nil {
			t.Fatal(err)
		}
		rec, err := r.u.loadRecord(t.Context(), "alice")
		if err != nil || rec == nil {
			t.Fatalf("write %d: record %v, %v", i, rec, err)
		}
		if rec.Demo || rec.Client != "SITEKEY" || rec.SIPURI != site.SIPURI || rec.Password != "site-pw" || !rec.Deadline.After(time.Now()) {
			t.Fatalf("write %d changed the site's registration: %+v", i, rec)
		}
	}
}
