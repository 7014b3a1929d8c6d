package asadapter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// sippHeader returns the value of header in the first message sipp received whose first
// line starts with prefix ("" when there is none).
func sippHeader(t *testing.T, s *testpeer.Sipp, prefix, header string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(b), "-----------------------------------------------") {
		_, msg, ok := strings.Cut(block, "message received")
		if !ok {
			continue
		}
		first := ""
		for _, l := range strings.Split(msg, "\n")[1:] {
			l = strings.TrimSpace(l)
			if first == "" {
				if l == "" {
					continue
				}
				if first = l; !strings.HasPrefix(first, prefix) {
					break
				}
				continue
			}
			if l == "" {
				break // end of the headers
			}
			if v, ok := strings.CutPrefix(l, header+":"); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

// waitIdentity waits until the adapter's identities show client logged in (or not).
func waitIdentity(t testing.TB, a *Adapter, client string, want bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		if ok := a.callerIdentity(t.Context(), "players/"+client+"/audio").user != ""; ok == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("identity of client %s: logged in %v, want %v", client, !want, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// writeUser writes users/<user> and its index entry as the registration half does.
func (e *env) writeUser(user, display string, ops ...store.Op) {
	e.t.Helper()
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: "users", Base: -1,
		Ops: []store.Op{store.Set(user, display)}}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: "users/" + user, Base: -1, Ops: ops}); err != nil {
		e.t.Fatal(err)
	}
}

func TestCallFromRegisteredUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Logged in before the adapter starts: found by the load at Run.
	e.dir.login("webuser", "webcl")
	e.writeUser("webuser", `Web "W" User`,
		store.Set("sip_uri", "sip:webuser@ims.test;transport=tcp"), store.Set("registration", "registered"))
	i := e.adapter("gw1", nil)
	waitIdentity(t, i.a, "webcl", true)
	// Logged in while it runs, but its registration failed: not an identity to call with.
	e.dir.login("failer", "failcl")
	e.writeUser("failer", "Failer",
		store.Set("sip_uri", "sip:failer@ims.test"), store.Set("registration", "registering"))
	e.writeUser("failer", "Failer", store.Set("registration", "failed"))
	deadline := time.Now().Add(waitFor)
	for !i.a.ids.seen("failer", "failed") {
		if time.Now().After(deadline) {
			t.Fatal("the failed registration never reached the adapter")
		}
		time.Sleep(10 * time.Millisecond)
	}

	cases := []struct {
		name, client, from string
	}{
		{"registered", "webcl", `"Web \"W\" User" <sip:webuser@ims.test>`},
		{"not registered", "failcl", "<sip:dsmgw@127.0.0.1>"},
		{"not logged in", "anoncl", "<sip:dsmgw@127.0.0.1>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sippScenario(t, "answer.xml")
			p := "players/" + tc.client + "/audio"
			e.dial(p, sippTarget(s.Addr))
			e.waitField(p, "mgw_state", "connected")
			e.browser(p, store.Set("player_state", "disconnected"))
			e.waitField(p, "mgw_state", "disconnected")
			waitSipp(t, s)
			for _, m := range []string{"INVITE ", "BYE "} {
				from := sippHeader(t, s, m, "From")
				if name, _, _ := strings.Cut(from, ";tag="); name != tc.from {
					t.Fatalf("%s From %q, want %q", m, from, tc.from)
				}
			}
		})
	}

	// Logout removes the client: the browser's calls go out as the adapter again.
	e.dir.login("webuser", "")
	e.writeUser("webuser", "Web User", store.Set("registration", "unregistered"))
	waitIdentity(t, i.a, "webcl", false)
}

func TestNameAddrRoundTrip(t *testing.T) {
	u := sip.Uri{Scheme: "sip", User: "alice", Host: "ims.test"}
	for _, display := range []string{"", "Alice", `Al "the" Ice`, `back\slash`, "Zoë", "evil\r\nVia: SIP/2.0/UDP x"} {
		v := nameAddr(display, u)
		if strings.ContainsAny(v, "\r\n") {
			t.Fatalf("%q: line break in %q", display, v)
		}
		h, err := addrHeader(v, "tag1")
		if err != nil {
			t.Fatalf("%q: %q does not parse back: %v", display, v, err)
		}
		if h.Address.User != "alice" || h.Address.Host != "ims.test" {
			t.Fatalf("%q: address %v", display, h.Address)
		}
		if tag, _ := h.Params.Get("tag"); tag != "tag1" {
			t.Fatalf("%q: tag %q", display, tag)
		}
	}
}

// seen reports whether user is known in registration state reg (for tests).
func (ids *identities) seen(user, reg string) bool {
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	u, ok := ids.users[user]
	return ok && u.registration == reg
}
