package users

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/confinfo"
	"dsmgw/asadapter/internal/siptest"
	"dsmgw/asadapter/sipport"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// participant is a participant's value in a DSM list (the schema's participantFields).
type participant struct {
	Display string `json:"display"`
	Status  string `json:"status"`
}

// TestConferenceSubscription: a user registered through one sipp (the registrar) with
// conferences "conf1" subscribes to a second sipp (the conference server), which answers
// 200, sends a full conference-info (alice connected, bob alerting) and a partial one
// (bob connected, carol joins, alice leaves). The DSM list users/<user>/conf/conf1 goes
// through exactly those two states, in two commits; logout unsubscribes (Expires: 0),
// clears the list and un-registers.
func TestConferenceSubscription(t *testing.T) {
	t.Parallel()
	regScen, _ := filepath.Abs("testdata/register/registrar_plain.xml")
	confScen, _ := filepath.Abs("testdata/confinfo/notifier.xml")
	registrar := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: regScen, Args: []string{"-m", "1"}})
	confSrv := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: confScen, Args: []string{"-m", "1"}})
	r := startUsers(t, siptest.New(t, ""), Config{
		Registrar:        "sip:" + registrar.Addr,
		ConferenceDomain: confSrv.Addr,
	}, "")
	ctx := context.Background()
	f := r.u.schema.Users.Fields
	userObj := r.u.schema.UserAddress("dave")
	// The web side lists the conferences dave may join.
	if _, err := r.st.Commit(ctx, store.Commit{Obj: userObj, Base: -1,
		Ops: []store.Op{store.Set(f.Conferences, "conf1")}}); err != nil {
		t.Fatal(err)
	}
	code, body := r.call(t, "POST", "/v1/users/dave/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:dave@dsmgw.test", Client: "CLIENTKEY3",
	})
	if code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	confObj := r.u.schema.ConferenceAddress("dave", "conf1")
	r.waitFields(t, confObj, "carol joined and alice left", func(m map[string]string) bool {
		_, alice := m["sip:alice@example.com"]
		return m["sip:carol@example.com"] != "" && !alice
	})
	read, err := r.st.Since(ctx, confObj, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(read.Log) != 2 {
		t.Fatalf("want 2 commits (full, partial), got %d: %+v", len(read.Log), read)
	}
	state := map[string]string{}
	want := []map[string]participant{
		{"sip:alice@example.com": {"Alice", "connected"}, "sip:bob@example.com": {"Bob", "alerting"}},
		{"sip:bob@example.com": {"Bob", "connected"}, "sip:carol@example.com": {"Carol", "connected"}},
	}
	for i, e := range read.Log {
		store.Apply(state, e.Ops)
		if len(state) != len(want[i]) {
			t.Fatalf("after commit %d: %v", i+1, state)
		}
		for k, p := range want[i] {
			var got participant
			if err := json.Unmarshal([]byte(state[k]), &got); err != nil || got != p {
				t.Fatalf("after commit %d: %s = %s, want %+v", i+1, k, state[k], p)
			}
		}
	}
	waitCounter(t, r.u.met.notifies.WithLabelValues("applied"), 2, "applied NOTIFYs")
	if v := metricValue(r.u.met.subscriptions); v != 1 {
		t.Fatalf("subscriptions gauge %v", v)
	}

	if code, body := r.call(t, "DELETE", "/v1/users/dave/register", usersTestSecret, nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	r.waitFields(t, confObj, "list cleared", func(m map[string]string) bool { return len(m) == 0 })
	r.waitFields(t, userObj, "unregistered", func(m map[string]string) bool { return m[f.Registration] == sipport.RegUnregistered })
	for name, s := range map[string]*testpeer.Sipp{"registrar": registrar, "conference server": confSrv} {
		if rc, err := s.Wait(30 * time.Second); err != nil || rc != 0 {
			t.Fatalf("sipp %s: exit %d, %v", name, rc, err)
		}
	}
	if v := metricValue(r.u.met.subscriptions); v != 0 {
		t.Fatalf("subscriptions gauge after logout %v", v)
	}
}

// TestNotifyWithoutSubscription: a NOTIFY for no subscription of ours is answered 481, and
// one with a body we cannot parse 400; neither writes anything.
func TestNotifyRouting(t *testing.T) {
	t.Parallel()
	ts := siptest.New(t, "")
	r := startUsers(t, ts, Config{}, "")
	peer := siptest.New(t, "")
	s := &subscription{u: r.u, log: r.u.log, kick: make(chan struct{}, 1), roster: confinfo.NewRoster(),
		obj: r.u.schema.ConferenceAddress("erin", "c1"), written: map[string]string{}, ctx: context.Background(), toTag: "T"}
	r.u.bindSub("known-call-id", s)
	cases := map[string]struct {
		callID, event, ctype, body string
		want                       int
	}{
		"unknown dialog": {"other", "conference", confinfo.ContentType, "", 481},
		"bad event":      {"known-call-id", "presence", confinfo.ContentType, "", 489},
		"bad type":       {"known-call-id", "conference", "text/plain", "x", 415},
		"malformed":      {"known-call-id", "conference", confinfo.ContentType, "<conference-info", 400},
		"no body":        {"known-call-id", "conference", "", "", 200},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := sendNotify(t, peer, ts.LocalPort(), tc.callID, tc.event, tc.ctype, tc.body)
			if got != tc.want {
				t.Fatalf("status %d, want %d", got, tc.want)
			}
		})
	}
	if snap, _ := r.st.Snapshot(context.Background(), s.obj); snap.Rev != 0 {
		t.Fatalf("refused NOTIFYs wrote %v", snap)
	}
	if v := metricValue(r.u.met.parseErrors); v != 1 {
		t.Fatalf("parse errors %v", v)
	}
}

// sendNotify sends a NOTIFY from peer to the UA on port and returns the status code.
func sendNotify(t *testing.T, peer *siptest.Port, port int, callID, event, ctype, body string) int {
	t.Helper()
	target := sip.Uri{Scheme: "sip", User: "erin", Host: "127.0.0.1", Port: port}
	req := sip.NewRequest(sip.NOTIFY, target)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "c1", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", "T")
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: target, Params: sip.NewParams()})
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=60"))
	if ctype != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	}
	req.SetBody([]byte(body))
	peer.PrepareRequest(req)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := peer.Client().Do(ctx, req)
	if err != nil {
		t.Fatalf("NOTIFY: %v", err)
	}
	return res.StatusCode
}

// startConfRig starts a plain registrar, a conference server running scenario (with sipp
// args) and Users for user with conferences "conf1", and registers the user.
func startConfRig(t *testing.T, user, scenario string, args []string, cfg Config) (*usersRig, *testpeer.Sipp, *testpeer.Sipp) {
	t.Helper()
	regScen, _ := filepath.Abs("testdata/register/registrar_plain.xml")
	confScen, _ := filepath.Abs(filepath.Join("testdata/confinfo", scenario))
	registrar := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: regScen, Args: []string{"-m", "1"}})
	confSrv := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: confScen, Args: args})
	cfg.Registrar, cfg.ConferenceDomain = "sip:"+registrar.Addr, confSrv.Addr
	r := startUsers(t, siptest.New(t, ""), cfg, "")
	f := r.u.schema.Users.Fields
	if _, err := r.st.Commit(context.Background(), store.Commit{Obj: r.u.schema.UserAddress(user), Base: -1,
		Ops: []store.Op{store.Set(f.Conferences, "conf1")}}); err != nil {
		t.Fatal(err)
	}
	if code, body := r.call(t, "POST", "/v1/users/"+user+"/register", usersTestSecret, RegisterRequest{
		SIPURI: "sip:" + user + "@dsmgw.test", Client: "K" + user}); code != 202 {
		t.Fatalf("POST: %d %s", code, body)
	}
	return r, registrar, confSrv
}

// TestConferenceVersionGap: a partial NOTIFY that skips a version is not applied; the
// subscriber refreshes its subscription in the dialog and the full state that follows
// replaces the list.
func TestConferenceVersionGap(t *testing.T) {
	t.Parallel()
	r, registrar, confSrv := startConfRig(t, "gina", "notifier_gap.xml", []string{"-m", "1"}, Config{})
	confObj := r.u.schema.ConferenceAddress("gina", "conf1")
	m := r.waitFields(t, confObj, "full state after the gap", func(m map[string]string) bool { return len(m) == 1 && m["sip:dave@example.com"] != "" })
	var p participant
	if err := json.Unmarshal([]byte(m["sip:dave@example.com"]), &p); err != nil || p != (participant{"Dave", "on-hold"}) {
		t.Fatalf("dave %s", m["sip:dave@example.com"])
	}
	read, err := r.st.Since(context.Background(), confObj, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range read.Log {
		for _, o := range e.Ops {
			if o.Field == "sip:mallory@example.com" {
				t.Fatalf("the out-of-sequence partial state was applied: %+v", read.Log)
			}
		}
	}
	if v := metricValue(r.u.met.notifies.WithLabelValues("gap")); v != 1 {
		t.Fatalf("gap NOTIFYs %v", v)
	}
	if code, body := r.call(t, "DELETE", "/v1/users/gina/register", usersTestSecret, nil); code != 202 {
		t.Fatalf("DELETE: %d %s", code, body)
	}
	waitSipp(t, confSrv)
	waitSipp(t, registrar)
}

// TestConferenceTerminated: when the notifier ends the subscription, the subscriber
// subscribes again with a new dialog (the second sipp call) and the list is kept.
func TestConferenceTerminated(t *testing.T) {
	t.Parallel()
	r, _, confSrv := startConfRig(t, "hank", "notifier_terminated.xml", []string{"-m", "2"},
		Config{RetryMin: 100 * time.Millisecond})
	waitSipp(t, confSrv)
	m := r.waitFields(t, r.u.schema.ConferenceAddress("hank", "conf1"), "list", func(m map[string]string) bool { return len(m) == 2 })
	if m["sip:alice@example.com"] == "" || m["sip:bob@example.com"] == "" {
		t.Fatalf("list %v", m)
	}
}

// TestConferenceRefresh481: a refresh answered 481 (the notifier lost the subscription)
// makes the subscriber subscribe again with a new dialog (the second sipp call).
func TestConferenceRefresh481(t *testing.T) {
	t.Parallel()
	r, _, confSrv := startConfRig(t, "ivan", "notifier_481.xml", []string{"-m", "2"},
		Config{RetryMin: 100 * time.Millisecond})
	waitSipp(t, confSrv)
	r.waitFields(t, r.u.schema.ConferenceAddress("ivan", "conf1"), "list", func(m map[string]string) bool { return len(m) == 2 })
}

// TestConferenceRemoved: taking a conference out of users/<user> conferences ends its
// subscription (SUBSCRIBE Expires: 0, checked by the notifier) and clears its list, while
// the user stays registered.
func TestConferenceRemoved(t *testing.T) {
	t.Parallel()
	r, _, confSrv := startConfRig(t, "judy", "notifier.xml", []string{"-m", "1"}, Config{})
	confObj := r.u.schema.ConferenceAddress("judy", "conf1")
	r.waitFields(t, confObj, "partial state", func(m map[string]string) bool { return m["sip:carol@example.com"] != "" })
	f := r.u.schema.Users.Fields
	if _, err := r.st.Commit(context.Background(), store.Commit{Obj: r.u.schema.UserAddress("judy"), Base: -1,
		Ops: []store.Op{store.Set(f.Conferences, "")}}); err != nil {
		t.Fatal(err)
	}
	waitSipp(t, confSrv)
	r.waitFields(t, confObj, "list cleared", func(m map[string]string) bool { return len(m) == 0 })
	if m := r.waitFields(t, r.u.schema.UserAddress("judy"), "", func(map[string]string) bool { return true }); m[f.Registration] != sipport.RegRegistered {
		t.Fatalf("user %v", m)
	}
}
