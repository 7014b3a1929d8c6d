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
// P-Asserted-Identity when the INVITE comes from the trust domain (a trusted address, or
// the outbound proxy's, by address or by name), and From when a direct peer outside it
// sends one (the edge removes it; see TestDirectPeerCallerID). sipp sends from 127.0.0.1.
func TestCallerIDFromAssertedIdentity(t *testing.T) {
	t.Parallel()
	scen, err := filepath.Abs("testdata/pai_invite.xml")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		trusted []string // Edge.Trusted
		proxy   string   // the adapter's outbound proxy
	}{
		"trusted address": {[]string{"127.0.0.1"}, ""},
		"trusted prefix":  {[]string{"127.0.0.0/30"}, ""},
		"from the proxy":  {nil, "sip:127.0.0.1:5999"},
		"proxy by a name": {nil, "sip:localhost:5999"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			user := "pai" + strings.ReplaceAll(name, " ", "")
			e.registerUser(user, user+"cl")
			a := e.adapter("gw1", func(c *Config) { c.OutboundProxy, c.Edge.Trusted = tc.proxy, tc.trusted })
			s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, Remote: a.a.Addr("udp"),
				Args: []string{"-m", "1", "-s", user}})
			p := "players/" + user + "cl/audio"
			fl := e.waitField(p, "player_state", "ringing")
			if want := `Asserted Alice <sip:alice@ims.test>`; fl["caller"] != want || fl["remote"] != "sip:alice@ims.test" {
				t.Fatalf("caller %q remote %q, want %q", fl["caller"], fl["remote"], want)
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
