package asadapter

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// attackerIP is a loopback address the tests' gateways do not trust (they trust
// 127.0.0.1, where their peers run, or only their outbound proxy there).
const attackerIP = "127.0.0.2"

// scenarioFrom starts a sipp client scenario of testdata on ip, sending to remote.
func scenarioFrom(t *testing.T, name, ip, remote string, args ...string) *testpeer.Sipp {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	// MediaPort left to StartSipp: it picks an even port with the two above it free
	// (sipp binds MediaPort+2 too; any free port could be 65534) and retries a lost race.
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, Remote: remote, Host: ip,
		Args: append([]string{"-m", "1"}, args...)})
}

// TestUntrustedInviteRefusedCSCFRings: a caller outside the trust domain sends an INVITE
// with a forged P-Asserted-Identity straight to the gateway for a registered page user:
// one stateless 403 (no 100, no retransmission: refused_invite.xml), and no player object
// is created. The same INVITE sent through the CSCF (Kamailio, the gateway's outbound
// proxy and its only trusted peer) rings the page, which shows the identity the CSCF
// passed on as asserted.
func TestUntrustedInviteRefusedCSCFRings(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := testpeer.StartKamailio(t)
	r := startUsersOnAdapter(t, e, Config{OutboundProxy: k.URI("udp"), Edge: edge.Config{Trusted: []string{}}},
		users.Config{})
	registerUsers(t, e, r, r.a, "web1")
	p := "players/Kweb1/audio"

	waitSipp(t, scenarioFrom(t, "refused_invite.xml", attackerIP, r.a.Addr("udp"), "-s", "web1"))
	if fl := e.fields(p); len(fl) != 0 {
		t.Fatalf("the refused INVITE made a player object: %v", fl)
	}
	if n := r.a.edge.Refusals(edge.ReasonUntrusted); n != 1 {
		t.Fatalf("refused as untrusted: %d, want 1", n)
	}

	s := scenarioFrom(t, "pai_invite.xml", attackerIP, k.Addr, "-s", "web1")
	fl := e.waitField(p, "player_state", "ringing")
	if want := "Asserted Alice <sip:alice@ims.test>"; fl["caller"] != want {
		t.Fatalf("caller %q through the CSCF, want %q", fl["caller"], want)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
}

// TestDirectPeerCallerID: a direct peer outside the trust domain that the operator gave
// credentials is challenged, answers, and rings the page; the P-Asserted-Identity it
// forged never reaches the page, which shows its From.
func TestDirectPeerCallerID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("peercalled", "peercalledcl")
	a := e.adapter("gw1", func(c *Config) { c.Edge.Peers = []edge.Credential{{User: "pbx", Password: "pbx-secret"}} })
	s := scenarioFrom(t, "pai_invite_auth.xml", attackerIP, a.a.Addr("udp"),
		"-s", "peercalled", "-au", "pbx", "-ap", "pbx-secret")
	p := "players/peercalledcl/audio"
	fl := e.waitField(p, "player_state", "ringing")
	if want := "From Header <sip:fromheader@elsewhere.test>"; fl["caller"] != want || strings.Contains(fl["remote"], "alice") {
		t.Fatalf("caller %q remote %q, want %q", fl["caller"], fl["remote"], want)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	if n := a.a.edge.Refusals(edge.ReasonChallenged); n != 1 {
		t.Fatalf("challenges: %d, want 1", n)
	}
}

// rawRequest sends one SIP request over UDP from ip to addr and returns the status line
// of the first final response (waiting up to waitFor).
func rawRequest(t *testing.T, ip, addr, msg string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg = strings.ReplaceAll(msg, "LOCAL", c.LocalAddr().String())
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo([]byte(strings.ReplaceAll(msg, "\n", "\r\n")), ra); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	_ = c.SetReadDeadline(time.Now().Add(waitFor))
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no final response to %q: %v", strings.SplitN(msg, "\n", 2)[0], err)
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
}

// invite is an INVITE to uri from LOCAL (rawRequest fills it in), with callID.
func invite(uri, callID string) string {
	return "INVITE " + uri + " SIP/2.0\n" +
		"Via: SIP/2.0/UDP LOCAL;branch=z9hG4bK-" + callID + ";rport\n" +
		"From: <sip:tester@example.net>;tag=t-" + callID + "\n" +
		"To: <" + uri + ">\n" +
		"Call-ID: " + callID + "\n" +
		"CSeq: 1 INVITE\n" +
		"Contact: <sip:tester@LOCAL>\n" +
		"Max-Forwards: 70\n" +
		"Content-Length: 0\n\n"
}

// TestIncomingCallChecks: from the trust domain too, a call rings only a user whose
// registration is live, and only for a Request-URI of our domain, of the user's address
// of record or of a contact we hand out; the refusals cost no Redis read (the users
// known to the feed are asked) and are counted by reason.
func TestIncomingCallChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dir.login("live", "livecl")
	e.writeUser("live", "Live", store.Set("sip_uri", "sip:live@ims.test"), store.Set("registration", "registered"))
	e.dir.login("pending", "pendingcl")
	e.writeUser("pending", "Pending", store.Set("sip_uri", "sip:pending@ims.test"), store.Set("registration", "registering"))
	i := e.adapter("gw1", func(c *Config) { c.Domain = "gw.test" })
	waitIdentity(t, i.a, "livecl", true)
	addr := i.a.Addr("udp")
	_, port, _ := net.SplitHostPort(addr)
	for name, tc := range map[string]struct {
		uri, want string
		reason    edge.Reason
	}{
		"not registered":  {"sip:pending@ims.test", "SIP/2.0 480 Temporarily Unavailable", edge.ReasonNotRegistered},
		"foreign domain":  {"sip:live@nowhere.invalid", "SIP/2.0 404 Not Found", edge.ReasonForeignDomain},
		"another port":    {"sip:live@127.0.0.1:9", "SIP/2.0 404 Not Found", edge.ReasonForeignDomain},
		"unknown user":    {"sip:nobody@gw.test", "SIP/2.0 404 Not Found", edge.ReasonUnknownUser},
		"our domain":      {"sip:live@gw.test", "SIP/2.0 488 Not Acceptable Here (offer required)", 0},
		"the AOR's":       {"sip:live@ims.test", "SIP/2.0 488 Not Acceptable Here (offer required)", 0},
		"our contact":     {"sip:live@127.0.0.1:" + port, "SIP/2.0 488 Not Acceptable Here (offer required)", 0},
		"no user at all ": {"sip:127.0.0.1:" + port, "SIP/2.0 404 Not Found", edge.ReasonUnknownUser},
	} {
		t.Run(name, func(t *testing.T) {
			before := i.a.edge.Refusals(tc.reason)
			got := rawRequest(t, "127.0.0.1", addr, invite(tc.uri, "checks-"+strings.ReplaceAll(name, " ", "-")))
			if got != tc.want {
				t.Fatalf("INVITE %s: %q, want %q", tc.uri, got, tc.want)
			}
			if tc.reason != 0 && i.a.edge.Refusals(tc.reason) == before {
				t.Fatalf("refusal not counted as %s", tc.reason)
			}
		})
	}
}
