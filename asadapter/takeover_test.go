package asadapter

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// sippMsg is one request sipp received: its first line, headers (first value of each,
// by name) and body.
type sippMsg struct {
	first string
	hdr   map[string]string
	body  string
}

// sippRequests returns the requests sipp received whose method is method, in order. A
// retransmission (the same top Via branch and CSeq as one before it: Kamailio retransmits
// an INVITE that sipp has not answered within T1, as on a loaded machine) counts once,
// except for ACKs, which are all kept: the tests read their order, and an ACK sent again
// is a retransmission of the same request on purpose (call_resume_pending.go).
func sippRequests(t *testing.T, s *testpeer.Sipp, method string) []sippMsg {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []sippMsg
	seen := map[string]struct{}{}
	for _, block := range strings.Split(string(b), "-----------------------------------------------") {
		_, msg, ok := strings.Cut(block, "message received")
		if !ok {
			continue
		}
		lines := strings.Split(msg, "\n")[1:]
		m := sippMsg{hdr: map[string]string{}}
		inBody := false
		var body []string
		for _, l := range lines {
			l = strings.TrimSpace(l)
			switch {
			case m.first == "" && l == "":
			case m.first == "":
				m.first = l
			case inBody:
				if l != "" {
					body = append(body, l)
				}
			case l == "":
				inBody = true
			default:
				if k, v, ok := strings.Cut(l, ":"); ok {
					k = strings.ToLower(strings.TrimSpace(k))
					if _, seen := m.hdr[k]; !seen {
						m.hdr[k] = strings.TrimSpace(v)
					}
				}
			}
		}
		m.body = strings.Join(body, "\n")
		if !strings.HasPrefix(m.first, method+" ") {
			continue
		}
		key := viaBranch(m.hdr["via"]) + " " + m.hdr["cseq"]
		if _, dup := seen[key]; dup && method != "ACK" {
			continue
		}
		seen[key] = struct{}{}
		out = append(out, m)
	}
	return out
}

// viaBranch returns the branch parameter of the first Via in a Via value.
func viaBranch(v string) string {
	_, b, _ := strings.Cut(v, "branch=")
	b, _, _ = strings.Cut(b, ";")
	b, _, _ = strings.Cut(b, ",")
	return strings.TrimSpace(b)
}

// sdpLine returns the value of the first line of an SDP body with prefix ("o=", "m=").
func sdpLine(body, prefix string) string {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), prefix); ok {
			return v
		}
	}
	return ""
}

// tagOf returns the tag parameter of a From or To value.
func tagOf(v string) string {
	_, tag, _ := strings.Cut(v, ";tag=")
	tag, _, _ = strings.Cut(tag, ";")
	return tag
}

// callOwner returns the instance holding a player's claim, and the claim's generation
// as the player shows it.
func (e *env) callOwner(player string) (string, string) {
	e.t.Helper()
	v, err := e.st.Redis().Get(e.ctx, "asadapter:claim:"+player).Result()
	if err != nil {
		e.t.Fatalf("claim of a live call: %v", err)
	}
	return ClaimInstance(v), e.fields(player)["claim_gen"]
}

// waitMoved waits until the player's media URL is no longer old while the call stays
// connected; a failed call fails the test at once.
func (e *env) waitMoved(player, old string) map[string]string {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		fl := e.fields(player)
		if fl["mgw_state"] == "failed" || fl["player_state"] == "failed" {
			e.t.Fatalf("%s failed instead of moving: %v", player, fl)
		}
		if fl["mgw_url"] != "" && fl["mgw_url"] != old && fl["mgw_state"] == "connected" {
			return fl
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: media URL still %q (fields %v)", player, old, fl)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// farEnd starts a sipp far end with scenario behind Kamailio (with Record-Route, as the
// CSCF), and two adapters using Kamailio as their outbound proxy. It returns sipp, the
// adapters by name and the far end's URI. Through a proxy, as in a deployment: sipp
// itself answers a request at the address the dialog's first request came from, which
// after a takeover is the lost instance's.
func (e *env) farEnd(t *testing.T, scenario string, mods ...func(*Config)) (*testpeer.Sipp, map[string]*instance, string) {
	t.Helper()
	return e.behindProxy(t, sippScenario(t, scenario), mods...)
}

// behindProxy is farEnd for a sipp already started (with arguments of its own).
func (e *env) behindProxy(t *testing.T, s *testpeer.Sipp, mods ...func(*Config)) (*testpeer.Sipp, map[string]*instance, string) {
	t.Helper()
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ConfDomain: "far.test", ConfServer: "sip:" + s.Addr})
	viaProxy := func(c *Config) {
		c.OutboundProxy = k.URI("udp")
		c.AuthUser, c.AuthPassword = "dsmgw", testpeer.KamailioPassword
		for _, m := range mods {
			m(c)
		}
	}
	inst := map[string]*instance{"gw1": e.adapter("gw1", viaProxy), "gw2": e.adapter("gw2", viaProxy)}
	return s, inst, "sip:service@far.test"
}

func TestTakeoverContinuesCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover.xml")
	p := "players/gina/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	m := attachMedia(t, before["mgw_url"])
	m.waitReceived(t, 10) // sipp echoes what the page sends
	owner, gen := e.callOwner(p)
	survivor := "gw1"
	if owner == "gw1" {
		survivor = "gw2"
	}
	inst[owner].kill() // no BYE: its listeners are gone

	// The page's media reattaches to the new URL (as the media session does on a new
	// mgw_url), and media flows both ways through the survivor's termination.
	after := e.waitMoved(p, before["mgw_url"])
	m.close()
	m = attachMedia(t, after["mgw_url"])
	m.waitReceived(t, 25)
	e.waitSent(t, after["mgw_url"], 25)
	if after["call_id"] != before["call_id"] || after["player_state"] != "connected" || after["sip_status"] != before["sip_status"] {
		t.Fatalf("after takeover: %v (before %v)", after, before)
	}
	now, newGen := e.callOwner(p)
	g0, _ := strconv.Atoi(gen)
	g1, _ := strconv.Atoi(newGen)
	if now != survivor || g1 <= g0 {
		t.Fatalf("claim after takeover: %s generation %s, want %s above %s", now, newGen, survivor, gen)
	}

	// Fencing: a commit of the lost owner in its generation is refused, however late it
	// reaches Redis.
	stale := inst[owner].a.newCall(e.ctx, claimed{player: p, gen: int64(g0)}, DirOut, before["call_id"])
	if err := stale.commit(e.ctx, store.Set("mgw_state", "failed")); !errors.Is(err, store.ErrExpectFailed) {
		t.Fatalf("commit of the lost owner: %v, want %v", err, store.ErrExpectFailed)
	}
	stale.stop()

	// The re-INVITE: same dialog, CSeq far above, a Contact of the survivor, the same SDP
	// session in its next version with the survivor's media address.
	invites := sippRequests(t, s, "INVITE")
	if len(invites) != 2 {
		t.Fatalf("sipp received %d INVITEs, want the call's and the takeover's", len(invites))
	}
	first, re := invites[0], invites[1]
	if re.hdr["call-id"] != first.hdr["call-id"] || tagOf(re.hdr["from"]) != tagOf(first.hdr["from"]) ||
		tagOf(re.hdr["to"]) == "" {
		t.Fatalf("re-INVITE outside the dialog:\nfirst %v\nre %v", first.hdr, re.hdr)
	}
	cseq := func(v string) int { n, _ := strconv.Atoi(strings.Fields(v)[0]); return n }
	if cseq(re.hdr["cseq"]) < cseq(first.hdr["cseq"])+takeoverCSeqStep {
		t.Fatalf("re-INVITE CSeq %q, want at least %d above %q", re.hdr["cseq"], takeoverCSeqStep, first.hdr["cseq"])
	}
	if want := inst[survivor].a.Addr("udp"); !strings.Contains(re.hdr["contact"], want) {
		t.Fatalf("re-INVITE Contact %q, want the survivor's %s", re.hdr["contact"], want)
	}
	o1, o2 := strings.Fields(sdpLine(first.body, "o=")), strings.Fields(sdpLine(re.body, "o="))
	if len(o1) != 6 || len(o2) != 6 {
		t.Fatalf("o= lines %q and %q", o1, o2)
	}
	v1, _ := strconv.ParseUint(o1[2], 10, 64)
	v2, _ := strconv.ParseUint(o2[2], 10, 64)
	if o2[1] != o1[1] || o2[5] != o1[5] || v2 != v1+1 {
		t.Fatalf("re-offer origin %q, want the session of %q in its next version", o2, o1)
	}
	if m1, m2 := sdpLine(first.body, "m="), sdpLine(re.body, "m="); m1 == m2 || !strings.HasPrefix(m2, "audio ") {
		t.Fatalf("re-offer media %q, want a new port (first offer %q)", m2, m1)
	}

	// The call goes on at the survivor: the browser's hang-up is its BYE.
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
	e.checkGone(p) // the player is written before the dialog record goes
}

func TestTakeoverRefusedEndsCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover_refuse.xml")
	p := "players/hugo/audio"
	e.dial(p, target)
	e.waitField(p, "mgw_state", "connected")
	owner, _ := e.callOwner(p)
	inst[owner].kill()
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" || fl["sip_status"] != "488" || fl["mgw_url"] != "" ||
		!strings.Contains(fl["sip_reason"], reasonInstanceLost) || !strings.Contains(fl["sip_reason"], "488") {
		t.Fatalf("after a refused takeover: %v", fl)
	}
	waitSipp(t, s) // the BYE came and was answered
	e.waitNoTerminations()
	e.checkGone(p) // the player is written before the dialog record goes
}

func TestTakeoverRetriesAfterGlare(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover_glare.xml")
	p := "players/ines/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	owner, _ := e.callOwner(p)
	inst[owner].kill()
	e.waitMoved(p, before["mgw_url"])

	// The retry after 491 (RFC 3261 section 14.1) is a new transaction with the same
	// offer: a 491 changed nothing in the session.
	invites := sippRequests(t, s, "INVITE")
	if len(invites) != 3 {
		t.Fatalf("sipp received %d INVITEs, want the call's, the re-INVITE met with 491 and its retry", len(invites))
	}
	first, re := invites[1], invites[2]
	cseq := func(v string) int { n, _ := strconv.Atoi(strings.Fields(v)[0]); return n }
	if cseq(re.hdr["cseq"]) <= cseq(first.hdr["cseq"]) {
		t.Fatalf("retry CSeq %q not above %q", re.hdr["cseq"], first.hdr["cseq"])
	}
	if sdpLine(re.body, "o=") != sdpLine(first.body, "o=") {
		t.Fatalf("retry origin %q, want the refused offer's %q", sdpLine(re.body, "o="), sdpLine(first.body, "o="))
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

func TestTakeoverKeepsSessionTimer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover_se.xml", seConfig)
	p := "players/jana/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	owner, _ := e.callOwner(p)
	inst[owner].kill()
	e.waitMoved(p, before["mgw_url"])
	// sipp's scenario goes on only after the survivor's refresh (2 s, refresher=uac) came.
	deadline := time.Now().Add(waitFor)
	for len(sippRequests(t, s, "INVITE")) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("no session refresh from the survivor")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // its regexp check failed the call if the refresh lacked the interval
	e.waitNoTerminations()
}

func TestTakeoverContinuesIncomingCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The Request-URI keeps the CSCF's domain for the gateway, which is the adapters' own;
	// the caller reaches gw1 through Kamailio (with Record-Route), as through the CSCF.
	inst, s, p := incomingViaKamailio(t, e, "dana", "incoming_takeover.xml", true, nil)
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	before := e.waitField(p, "mgw_state", "connected")
	// The player shows connected before the 200 goes out (the dialog record turns
	// confirmed in between): the call is answered once the caller has the 200. Lost
	// before, it is a ringing call, which the takeover refuses with 480.
	waitSippReceived(t, s, "SIP/2.0 200")
	owner, _ := e.callOwner(p)
	if owner != "gw1" {
		t.Fatalf("call answered by %s, want gw1", owner)
	}
	inst[owner].kill()
	after := e.waitMoved(p, before["mgw_url"])
	if after["call_id"] != before["call_id"] || after["player_state"] != "connected" {
		t.Fatalf("after takeover: %v (before %v)", after, before)
	}
	m := attachMedia(t, after["mgw_url"])
	m.waitReceived(t, 25) // sipp echoes what the page sends, through gw2
	if now, _ := e.callOwner(p); now != "gw2" {
		t.Fatalf("claim held by %s after the takeover, want gw2", now)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // the re-INVITE was answered and the BYE came through Kamailio
	e.waitNoTerminations()
}

// An incoming call still ringing on a lost instance ends with a clean 480 to the caller
// from the survivor (docs/call-survival.md says why it does not ring on).
func TestTakeoverOfRingingIncomingCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	inst, s, p := incomingViaKamailio(t, e, "emil", "incoming_ringing_lost.xml", false, nil)
	e.waitField(p, "player_state", "ringing")
	// Set up and ringing: the player listed in the index is gw1's last write before its 180.
	e.waitField(e.st.Schema().Players.Index, p, "audio")
	inst["gw1"].kill()
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" || fl["sip_status"] != "480" || fl["sip_reason"] != reasonInstanceLost {
		t.Fatalf("after the takeover of a ringing call: %v", fl)
	}
	waitSipp(t, s) // the caller got the 480
	e.waitNoTerminations()
}
