package asadapter

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/emiago/sipgo/sip"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// sippTarget is the SIP URI of a sipp far end.
func sippTarget(addr string) string { return "sip:service@" + addr }

func TestCallAnswerThenBrowserHangsUp(t *testing.T) {
	t.Parallel()
	for _, sc := range []string{"answer.xml", "ring_answer.xml"} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			s := sippScenario(t, sc)
			e.adapter("gw1", nil)
			p := "players/alice1/audio"
			e.dial(p, sippTarget(s.Addr))
			fl := e.waitField(p, "mgw_state", "connected")
			if fl["player_state"] != "connected" || fl["mgw_url"] == "" || fl["sip_status"] != "200" {
				t.Fatalf("after answer: %v", fl)
			}
			if sc == "ring_answer.xml" && fl["progress"] != "" {
				t.Fatalf("progress left after answer: %v", fl)
			}
			e.browser(p, store.Set("player_state", "disconnected"))
			e.waitField(p, "mgw_state", "disconnected")
			waitSipp(t, s)
			e.waitNoTerminations()
		})
	}
}

func TestCallRejected(t *testing.T) {
	t.Parallel()
	for sc, status := range map[string]string{"busy.xml": "486", "decline.xml": "603"} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			s := sippScenario(t, sc)
			e.adapter("gw1", nil)
			p := "players/bob/audio"
			e.dial(p, sippTarget(s.Addr))
			fl := e.waitField(p, "mgw_state", "failed")
			if fl["sip_status"] != status || fl["sip_reason"] == "" || fl["player_state"] != "failed" {
				t.Fatalf("rejected call: %v", fl)
			}
			waitSipp(t, s)
			e.waitNoTerminations()
		})
	}
}

func TestCallNoAnswerTimesOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "noanswer.xml")
	e.adapter("gw1", func(c *Config) { c.InviteTimeout = 700 * 1e6 })
	p := "players/carol/audio"
	e.dial(p, sippTarget(s.Addr))
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["sip_status"] != "408" {
		t.Fatalf("timed out call: %v", fl)
	}
	// Ringing shows for the 700 ms of the timeout only: a poll for it missed it on a
	// loaded machine, so the player's history tells.
	if !e.wasSet(p, "progress", "ringing") {
		t.Fatalf("the call never showed ringing: %v", fl)
	}
	waitSipp(t, s)
	e.waitNoTerminations()
}

// wasSet reports whether a commit to player ever set field to value (from the op log).
func (e *env) wasSet(player, field, value string) bool {
	e.t.Helper()
	r, err := e.st.Since(e.ctx, player, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Fields != nil {
		e.t.Fatalf("%s: the op log no longer reaches back to the start", player)
	}
	for _, en := range r.Log {
		for _, op := range en.Ops {
			if op.Kind == store.OpSet && op.Field == field && op.Value != nil && *op.Value == value {
				return true
			}
		}
	}
	return false
}

// TestCallBrowserCancelsWhileRinging: the user's own hang-up while the far end rings
// sends CANCEL and ends the call as disconnected, not failed: the far end's 487 answers
// our CANCEL and is no refusal. (The adapter once overwrote the browser's disconnected
// with failed / 487.)
func TestCallBrowserCancelsWhileRinging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "noanswer.xml")
	e.adapter("gw1", nil)
	p := "players/carol2/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "progress", "ringing")
	e.browser(p, store.Set("player_state", "disconnected"))
	fl := e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // the scenario checks the CANCEL and answers it 487
	e.waitNoTerminations()
	fl = e.fields(p)
	if fl["player_state"] != "disconnected" || fl["mgw_state"] != "disconnected" || fl["sip_status"] != "" || fl["progress"] != "" {
		t.Fatalf("after the browser hung up while ringing: %v", fl)
	}
}

func TestCallDigestChallengeOverTCPProxy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := testpeerSipp(t, "auth407.xml", "t1")
	e.adapter("gw1", func(c *Config) {
		c.OutboundProxy = fmt.Sprintf("sip:%s;transport=tcp", s.Addr)
		c.AuthUser, c.AuthPassword = "alice", "secret"
	})
	p := "players/dave/audio"
	e.dial(p, "sip:conf@example.test")
	fl := e.waitField(p, "mgw_state", "connected")
	if fl["mgw_url"] == "" {
		t.Fatalf("no media URL: %v", fl)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

func TestCallFarEndHangsUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "farbye.xml")
	e.adapter("gw1", nil)
	p := "players/erin/audio"
	e.dial(p, sippTarget(s.Addr))
	fl := e.waitField(p, "player_state", "disconnected")
	if fl["mgw_state"] != "disconnected" || fl["mgw_url"] != "" {
		t.Fatalf("after far-end BYE: %v", fl)
	}
	waitSipp(t, s)
	e.waitNoTerminations()
}

func TestCallHoldAndResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "hold.xml")
	e.adapter("gw1", func(c *Config) { c.DTMF = DTMFInfo })
	p := "players/frank/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	e.waitField(p, "hold", "remote")
	e.browser(p, store.Set("dtmf", "1")) // sipp resumes once this INFO arrived
	e.waitField(p, "dtmf", "")
	e.waitField(p, "hold", "")
	e.browser(p, store.Set("dtmf", "2"))
	e.waitField(p, "dtmf", "")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

// TestCallOverTCPProxyDialsFromEphemeralPort: an INVITE routed to an outbound proxy over
// TCP goes out on a connection from an ephemeral port. (It once kept the source address
// set for a first hop over UDP, and bound its TCP socket to the port number of the UDP
// listener: a call failed whenever another socket held that TCP port, as the test's own
// listener does here.)
func TestCallOverTCPProxyDialsFromEphemeralPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := testpeerSipp(t, "answer.xml", "t1")
	i := e.adapter("gw1", func(c *Config) {
		c.OutboundProxy = fmt.Sprintf("sip:%s;transport=tcp", s.Addr)
	})
	// Hold the UDP listener's port number over TCP (someone else may hold it already,
	// which serves as well).
	l, err := net.Listen("tcp", i.a.Addr("udp"))
	if err != nil && !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatal(err)
	}
	if l != nil {
		defer l.Close()
	}
	p := "players/tcpdial/audio"
	e.dial(p, "sip:conf@example.test")
	e.waitField(p, "mgw_state", "connected")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

// TestCallOverTCPProxySharedPort: the default configuration, UDP and TCP listeners on one
// port, with the outbound proxy over TCP. Every INVITE once failed before anything was
// sent ("dial tcp <ours>:5060-><proxy>: bind: address already in use"): the request kept
// the UDP listener's address as its source when its Via was rewritten for TCP, and the TCP
// listener holds that port.
func TestCallOverTCPProxySharedPort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := testpeerSipp(t, "answer.xml", "t1")
	shared := "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
	i := e.adapter("gw1", func(c *Config) {
		c.ListenUDP, c.ListenTCP = shared, shared
		c.OutboundProxy = fmt.Sprintf("sip:%s;transport=tcp", s.Addr)
	})
	if i.a.Addr("udp") != i.a.Addr("tcp") {
		t.Fatalf("listeners on %s and %s, want one port", i.a.Addr("udp"), i.a.Addr("tcp"))
	}
	p := "players/tcpshared/audio"
	e.dial(p, "sip:conf@example.test")
	e.waitField(p, "mgw_state", "connected")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}

func TestResolveTarget(t *testing.T) {
	a := &Adapter{cfg: Config{Domain: "ims.test", ConferenceDomain: "conf.ims.test"}}
	user := caller{user: "web1", aor: sip.Uri{Scheme: "sip", User: "web1", Host: "users.test", Port: 5070}}
	for name, tc := range map[string]struct {
		cfgConf, dest string
		conference    bool
		who           caller
		want          string
	}{
		"bare user":                    {"", "bob", false, caller{}, "sip:bob@ims.test"},
		"user at host":                 {"", "bob@x.test", false, caller{}, "sip:bob@x.test"},
		"tel":                          {"", "tel:+1555", false, caller{}, "sip:+1555@ims.test;user=phone"},
		"sip uri":                      {"", "sips:bob@x.test:5061", false, caller{}, "sips:bob@x.test:5061"},
		"bare room":                    {"conf.ims.test", "r1", true, caller{}, "sip:r1@conf.ims.test"},
		"room uri":                     {"conf.ims.test", "sip:r1@elsewhere.test", true, caller{}, "sip:r1@elsewhere.test"},
		"bare room, no domain, user":   {"", "r1", true, user, "sip:r1@users.test:5070"},
		"bare room, no domain, anonym": {"", "r1", true, caller{}, "sip:r1@ims.test"},
	} {
		t.Run(name, func(t *testing.T) {
			a.cfg.ConferenceDomain = tc.cfgConf
			domain := a.cfg.Domain
			if tc.conference {
				domain = a.conferenceDomain(tc.who)
			}
			got, err := a.resolveTarget(tc.dest, domain)
			if err != nil || got != tc.want {
				t.Fatalf("%q: %q %v, want %q", tc.dest, got, err, tc.want)
			}
		})
	}
}

// TestCallHeldByPage: the page writes hold_intent "hold": the far end gets a re-INVITE
// with a=sendonly and the player shows hold "local"; deleting it resumes with a=sendrecv
// and the player's hold is gone (hold_local.xml checks both offers).
func TestCallHeldByPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "hold_local.xml")
	e.adapter("gw1", nil)
	p := "players/held/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	e.browser(p, store.Set("hold_intent", "hold"))
	e.waitField(p, "hold", "local")
	e.browser(p, store.Del("hold_intent"))
	e.waitField(p, "hold", "")
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.waitNoTerminations()
}
