package asadapter

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

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
	e.waitField(p, "progress", "ringing")
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["sip_status"] != "408" {
		t.Fatalf("timed out call: %v", fl)
	}
	waitSipp(t, s)
	e.waitNoTerminations()
}

func TestCallBrowserCancelsWhileRinging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "noanswer.xml")
	e.adapter("gw1", nil)
	p := "players/carol2/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "progress", "ringing")
	e.browser(p, store.Set("player_state", "disconnected"))
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["sip_status"] != "487" {
		t.Fatalf("cancelled call: %v", fl)
	}
	waitSipp(t, s)
	e.waitNoTerminations()
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
