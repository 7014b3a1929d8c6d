package asadapter

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestCallerIDFromAssertedIdentity: an incoming call shows the caller asserted in
// P-Asserted-Identity when the INVITE comes from the outbound proxy's address, and From
// otherwise (a P-Asserted-Identity from anyone else is ignored, as anyone can write one).
func TestCallerIDFromAssertedIdentity(t *testing.T) {
	t.Parallel()
	scen, err := filepath.Abs("testdata/pai_invite.xml")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		proxy  string // the adapter's outbound proxy; %s is sipp's port
		caller string
		remote string
	}{
		// sipp sends from 127.0.0.1: the proxy on that address is trusted, one on
		// 127.0.0.2 (another loopback address) is not.
		"from the proxy":  {"sip:127.0.0.1:5999", `Asserted Alice <sip:alice@ims.test>`, "sip:alice@ims.test"},
		"from elsewhere":  {"sip:127.0.0.2:5999", `From Header <sip:fromheader@elsewhere.test>`, "sip:fromheader@elsewhere.test"},
		"no proxy at all": {"", `From Header <sip:fromheader@elsewhere.test>`, "sip:fromheader@elsewhere.test"},
		"proxy by a name": {"sip:localhost:5999", `Asserted Alice <sip:alice@ims.test>`, "sip:alice@ims.test"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			user := "pai" + strings.ReplaceAll(name, " ", "")
			e.registerUser(user, user+"cl")
			a := e.adapter("gw1", func(c *Config) { c.OutboundProxy = tc.proxy })
			s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Remote: a.a.Addr("udp"),
				Args: []string{"-m", "1", "-s", user}})
			p := "players/" + user + "cl/audio"
			fl := e.waitField(p, "player_state", "ringing")
			if fl["caller"] != tc.caller || fl["remote"] != tc.remote {
				t.Fatalf("caller %q remote %q, want %q %q", fl["caller"], fl["remote"], tc.caller, tc.remote)
			}
			e.browser(p, store.Set("player_state", "disconnected"))
			e.waitField(p, "mgw_state", "disconnected")
			waitSipp(t, s)
		})
	}
}

func TestAssertedIdentity(t *testing.T) {
	for name, tc := range map[string]struct {
		headers []string
		display string
		uri     string
	}{
		"sip":               {[]string{`"Alice" <sip:alice@ims.test>`}, "Alice", "sip:alice@ims.test"},
		"tel first":         {[]string{`<tel:+1555>, "Bob" <sip:bob@ims.test;user=phone>`}, "Bob", "sip:bob@ims.test"},
		"two headers":       {[]string{`<tel:+1555>`, `<sips:carol@ims.test:5061>`}, "", "sips:carol@ims.test:5061"},
		"only tel":          {[]string{`<tel:+1555>`}, "", ""},
		"none":              {nil, "", ""},
		"garbage then good": {[]string{`<<>>, "D" <sip:d@x>`}, "D", "sip:d@x"},
	} {
		t.Run(name, func(t *testing.T) {
			req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "u", Host: "h"})
			for _, h := range tc.headers {
				req.AppendHeader(sip.NewHeader("P-Asserted-Identity", h))
			}
			d, u, ok := assertedIdentity(req)
			if ok != (tc.uri != "") || (ok && (d != tc.display || u.String() != tc.uri)) {
				t.Fatalf("%q %q %v, want %q %q", d, u.String(), ok, tc.display, tc.uri)
			}
		})
	}
}

// FuzzAssertedIdentity: no header value panics the parser, and what it returns is a
// sip/sips URI with a host and no line break (it is written into a DSM field and shown).
func FuzzAssertedIdentity(f *testing.F) {
	for _, s := range []string{`"A" <sip:a@b>`, `<tel:+1>, <sip:x@y;user=phone>`, `sip:a@b`, `"\"" <sips:[::1]:5061>`, `<,>`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "u", Host: "h"})
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", v))
		d, u, ok := assertedIdentity(req)
		if !ok {
			return
		}
		if (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
			t.Fatalf("%q: accepted %#v", v, u)
		}
		if strings.ContainsAny(d+u.String(), "\r\n") {
			t.Fatalf("%q: line break in %q %q", v, d, u.String())
		}
	})
}
