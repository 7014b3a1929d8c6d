package ptt

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/floorctl"
)

// The page asks, the gate opens before the page hears of the grant, the others see who
// talks; a request while taken is queued and granted on release; the gate closes before
// the Floor Release leaves.
func TestChannelFloorCycle(t *testing.T) {
	t.Parallel()
	s := newFloorServer(t, floorctl.Config{})
	ports := testPorts(t)
	alice := startCall(t, ports, s, "sip:alice@test.invalid", nil)
	bob := startCall(t, ports, s, "sip:bob@test.invalid", nil)

	alice.ch.Request()
	st := alice.rec.wait(t, "granted", floorIs(floorctl.FloorIsGranted))
	if st.Duration < 29 || st.Duration > 30 {
		t.Errorf("granted for %d s, want the server's 30", st.Duration)
	}
	ev := alice.rec.eventLog()
	if i, j := slices.Index(ev, "gate open"), slices.Index(ev, "floor granted"); i < 0 || j < i {
		t.Fatalf("the gate must open before the page hears of the grant: %v", ev)
	}
	taken := bob.rec.wait(t, "taken", floorIs(floorctl.FloorIsTaken))
	if taken.Talker != "sip:alice@test.invalid" {
		t.Errorf("talker %q", taken.Talker)
	}

	bob.ch.Request()
	if q := bob.rec.wait(t, "queued", floorIs(floorctl.FloorIsQueued)); q.Position != 1 || q.Talker != "sip:alice@test.invalid" {
		t.Errorf("queued %+v", q)
	}
	alice.ch.Release()
	bob.rec.wait(t, "granted after alice", floorIs(floorctl.FloorIsGranted))
	alice.rec.wait(t, "taken by bob", func(s State) bool { return s.Floor == floorctl.FloorIsTaken && s.Talker == "sip:bob@test.invalid" })
	ev = alice.rec.eventLog()
	if ev[len(ev)-1] != "floor taken" || !slices.Contains(ev, "gate closed") {
		t.Fatalf("alice's events %v", ev)
	}
	if st := s.status(); !strings.HasSuffix(st.Holder, ":"+itoa(bob.ch.Port())) {
		t.Fatalf("server holder %q, want bob", st.Holder)
	}
}

// A gate that cannot open gives the floor back: the page sees why, the group is free.
func TestChannelGateFailureReleases(t *testing.T) {
	t.Parallel()
	s := newFloorServer(t, floorctl.Config{})
	ports := testPorts(t)
	c := startCall(t, ports, s, "sip:carol@test.invalid", errGateDown)
	c.ch.Request()
	st := c.rec.wait(t, "the reason", func(s State) bool { return strings.Contains(s.Reason, errGateDown.Error()) })
	if st.Floor == floorctl.FloorIsGranted {
		t.Fatalf("granted with a closed gate: %+v", st)
	}
	waitFor(t, "the floor free on the server", func() bool { return s.status().Holder == "" })
}

// When the call ends while it holds the floor, the channel gives it back.
func TestChannelEndReleases(t *testing.T) {
	t.Parallel()
	s := newFloorServer(t, floorctl.Config{})
	ports := testPorts(t)
	ch, err := ports.Open(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.SetAnswer(s.answer()); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = ch.Run(ctx, rec.hooks()) }()
	s.join(ch, "sip:dave@test.invalid")
	ch.Request()
	rec.wait(t, "granted", floorIs(floorctl.FloorIsGranted))
	cancel()
	<-ch.Done()
	waitFor(t, "Floor Release at the server", func() bool { return s.status().Holder == "" })
	if ev := rec.eventLog(); ev[len(ev)-1] != "gate closed" && !slices.Contains(ev[len(ev)-3:], "gate closed") {
		t.Fatalf("the gate was not closed at the end: %v", ev)
	}
}

// The gateway-level table of malformed floor messages: each comes from the server's
// own address to a channel that holds the floor, and each is refused: the page's state
// does not change, the gate stays open, nothing goes back to the server. A well-formed
// message from a foreign address is refused too.
func TestChannelMalformedFloorMessages(t *testing.T) {
	t.Parallel()
	s := newFloorServer(t, floorctl.Config{})
	ports := testPorts(t)
	c := startCall(t, ports, s, "sip:erin@test.invalid", nil)
	c.ch.Request()
	c.rec.wait(t, "granted", floorIs(floorctl.FloorIsGranted))
	const mcpt = "4d435054"
	table := []struct{ name, hex string }{
		{"empty", ""},
		{"eleven bytes", "80cc0002" + "11223344" + "4d4350"},
		{"RTCP version 1", "41cc0002" + "11223344" + mcpt},
		{"receiver report", "80c90002" + "11223344" + mcpt},
		{"APP named PoC1 (OMA TBCP)", "85cc0002" + "11223344" + "506f4331"},
		{"length 65535", "85ccffff" + "11223344" + mcpt},
		{"padding count 0", "a5cc0003" + "11223344" + mcpt + "00000000"},
		{"unknown subtype 00111", "87cc0002" + "11223344" + mcpt},
		{"ack bit on a floor revoke", "96cc0003" + "aabbccdd" + mcpt + "02020002"},
		{"floor revoke without reject cause", "86cc0003" + "aabbccdd" + mcpt + "0d028000"},
		{"floor idle without sequence number", "85cc0003" + "aabbccdd" + mcpt + "0d028000"},
		{"floor taken without sequence number", "82cc0003" + "aabbccdd" + mcpt + "05020001"},
		{"floor deny without reject cause", "83cc0002" + "aabbccdd" + mcpt},
		{"floor granted without duration", "81cc0003" + "aabbccdd" + mcpt + "00020500"},
		{"duration of length 4", "81cc0004" + "aabbccdd" + mcpt + "01040000" + "001e0000"},
		{"field length past the end", "85cc0003" + "aabbccdd" + mcpt + "08080500"},
		{"permission to request 2", "82cc0004" + "aabbccdd" + mcpt + "05020002" + "08020001"},
		{"granted party identity not UTF-8", "82cc0005" + "aabbccdd" + mcpt + "0402fffe" + "08020001"},
		{"RTP, not RTCP", "80000001" + "00000000" + "11223344"},
	}
	before := c.rec.last()
	sent := len(s.received())
	events := len(c.rec.eventLog())
	for _, tc := range table {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		s.sendRaw(c.ch, b)
	}
	// A well-formed Floor Idle, but from another socket: not the server.
	foreign := newFloorServer(t, floorctl.Config{})
	idle := floorctl.Message{Subtype: floorctl.FloorIdle}
	idle.SetSequenceNumber(99)
	b, _ := idle.Marshal()
	foreign.sendRaw(c.ch, b)
	// A last good message from the server proves the bad ones were all read (one socket,
	// loopback keeps the order): a Floor Granted again, asking for a Floor Ack.
	again := floorctl.Message{Subtype: floorctl.FloorGranted, AckRequired: true}
	again.SetDuration(30)
	b, _ = again.Marshal()
	s.sendRaw(c.ch, b)
	waitFor(t, "the Floor Ack of the good message", func() bool { return slices.Contains(s.received()[sent:], floorctl.FloorAck) })
	after := c.rec.last()
	after.Duration, before.Duration = 0, 0
	if after != before {
		t.Fatalf("state changed from %+v to %+v", before, after)
	}
	for _, e := range c.rec.eventLog()[events:] {
		if strings.HasPrefix(e, "gate") {
			t.Fatalf("the gate moved: %v", c.rec.eventLog()[events:])
		}
	}
	if got := s.received()[sent:]; len(got) != 1 {
		t.Fatalf("the channel sent %v, want only the Floor Ack of the good message", got)
	}
}

// The offer's floor control line parses back to our address, port and parameters; an
// answer that refuses floor control is an error.
func TestChannelSDP(t *testing.T) {
	t.Parallel()
	ports := testPorts(t)
	ch, err := ports.Open(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	offer := ch.AppendOffer([]byte("v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"))
	m, err := floorctl.ParseMedia(offer)
	if err != nil || m.Port != ch.Port() || m.Addr.String() != "127.0.0.1" || !m.Params.Queueing || m.Params.Priority != 1 {
		t.Fatalf("offer's floor control %+v, %v\n%s", m, err, offer)
	}
	if !strings.Contains(string(offer), "m=application "+itoa(ch.Port())+" udp MCPTT\r\nc=IN IP4 127.0.0.1\r\na=fmtp:MCPTT mc_queueing;mc_priority=1\r\n") {
		t.Fatalf("offer lines out of order:\n%s", offer)
	}
	refused := []byte("v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 1 RTP/AVP 0\r\nm=application 0 udp MCPTT\r\n")
	if _, err := ch.SetAnswer(refused); !errors.Is(err, floorctl.ErrNoFloorControl) {
		t.Fatalf("a refused floor stream: %v", err)
	}
	if _, err := ch.SetAnswer([]byte("v=0\r\nm=audio 1 RTP/AVP 0\r\n")); !errors.Is(err, floorctl.ErrNoFloorControl) {
		t.Fatalf("no floor stream: %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never came", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
