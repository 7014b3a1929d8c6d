package asadapter

import (
	"strings"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestFreshMediaURL: the page of a connected call deletes mgw_url (its token expired, as
// after a reload); the call writes a fresh URL for the same termination with a new token.
func TestFreshMediaURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("max", "maxclient")
	a := e.adapter("gw1", nil)
	testpeer.StartSipp(t, testpeer.SippOptions{Scenario: "uac", Remote: a.a.Addr("udp"),
		RTPEcho: true, Args: []string{"-m", "1", "-s", "max", "-d", "60000"}})
	p := "players/maxclient/audio"
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	old := e.waitField(p, "mgw_state", "connected")["mgw_url"]
	e.browser(p, store.Expect("mgw_url", old), store.Del("mgw_url"))
	fl := e.waitFieldFunc(p, "a fresh mgw_url", func(fl map[string]string) bool { return fl["mgw_url"] != "" })
	path := func(u string) string { s, _, _ := strings.Cut(u, "?"); return s }
	// (Within the same second the token is the same: it signs the termination and its
	// expiry; what matters is that a valid URL is written again.)
	if path(fl["mgw_url"]) != path(old) || fl["player_state"] != "connected" {
		t.Fatalf("fresh URL %q after %q (fields %v)", fl["mgw_url"], old, fl)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	e.waitNoTerminations()
}
