package mediagw

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// A gated (push-to-talk) termination passes the browser's RTP only while its gate is
// open; each talkspurt continues the sequence with the marker bit; the far end's audio
// reaches the browser whatever the gate; the gate closes and the owner hears of it when
// the browser's WebSocket goes away.
func TestGate(t *testing.T) {
	t.Parallel()
	events := make(chan Event, 8)
	e := newEnv(t, func(c *Config) { c.OnEvent = func(ev Event) { events <- ev } })
	p := newPeer(t)
	ctx := context.Background()
	lt, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "test", CallID: t.Name(), Player: "players/p1", Gated: true})
	if err != nil {
		t.Fatal(err)
	}
	mu, err := e.cl.AddRemote(ctx, lt.ID, p.remote())
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, mu.URL)
	eventually(t, "attached", func() bool { return mustGet(t, e, lt.ID).WSAttached })
	gwRTP := &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTPPort}
	if tm := mustGet(t, e, lt.ID); !tm.Gated || tm.GateOpen {
		t.Fatalf("a new gated termination: gated %v, open %v", tm.Gated, tm.GateOpen)
	}

	gate := func(open bool) {
		t.Helper()
		tm, err := e.cl.Modify(ctx, lt.ID, ModifyRequest{GateOpen: &open})
		if err != nil || tm.GateOpen != open {
			t.Fatalf("gate %v: %v %+v", open, err, tm)
		}
	}
	// The browser sends from seq 100 on; a packet every 20 ms of its timeline.
	seq, ts := uint16(100), uint32(5000)
	send := func() {
		sendWS(t, ws, rtpPacket(0, seq, ts, 77, 160))
		seq, ts = seq+1, ts+160
	}

	// Closed: nothing reaches the far end, every packet counted as gated.
	for range 3 {
		send()
	}
	eventually(t, "gated drops", func() bool { return mustGet(t, e, lt.ID).Counters.Drops[DropGated] == 3 })
	// The far end's audio reaches the browser anyway: listeners hear the talker.
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 1, 0, 9, 160), gwRTP); err != nil {
		t.Fatal(err)
	}
	recvWS(t, ws)

	// Open: the first talkspurt. Nothing was sent before, so the stream goes as it is.
	gate(true)
	send()
	first := parseRTP(t, recvUDP(t, p.rtp))
	send()
	second := parseRTP(t, recvUDP(t, p.rtp))
	if second.SequenceNumber != first.SequenceNumber+1 || second.SSRC != first.SSRC {
		t.Fatalf("talkspurt not continuous: %+v then %+v", first, second)
	}

	// Closed for a while (the browser keeps sending), then open again: the sequence goes
	// on from the last number sent, with the marker bit and the same SSRC.
	gate(false)
	for range 5 {
		send()
	}
	eventually(t, "gated drops", func() bool { return mustGet(t, e, lt.ID).Counters.Drops[DropGated] == 8 })
	time.Sleep(40 * time.Millisecond) // real time passes between talkspurts
	gate(true)
	send()
	third := parseRTP(t, recvUDP(t, p.rtp))
	if third.SequenceNumber != second.SequenceNumber+1 || third.SSRC != second.SSRC || !third.Marker {
		t.Fatalf("second talkspurt: %+v after %+v (want seq+1, same SSRC, marker)", third, second)
	}
	if int32(third.Timestamp-second.Timestamp) < 160 {
		t.Fatalf("second talkspurt timestamp %d not past %d", third.Timestamp, second.Timestamp)
	}

	// The browser goes away: the gate closes by itself and the owner hears it once.
	ws.Close()
	select {
	case ev := <-events:
		if ev.Type != EventDetached || ev.Type.Ends() || ev.TerminationID != lt.ID || ev.Player != "players/p1" {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(deadline):
		t.Fatal("no ws_detached event")
	}
	if tm := mustGet(t, e, lt.ID); tm.GateOpen || tm.WSAttached {
		t.Fatalf("after detach: open %v, attached %v", tm.GateOpen, tm.WSAttached)
	}
}

// A termination without a gate refuses gate_open, and its detach tells nobody.
func TestGateOnUngatedTermination(t *testing.T) {
	t.Parallel()
	events := make(chan Event, 8)
	e := newEnv(t, func(c *Config) { c.OnEvent = func(ev Event) { events <- ev } })
	p := newPeer(t)
	c := e.newCall(t, p, true)
	open := true
	if _, err := e.cl.Modify(context.Background(), c.id, ModifyRequest{GateOpen: &open}); !errors.Is(err, ErrConflict) {
		t.Fatalf("gate_open on an ungated termination: %v, want a conflict", err)
	}
	c.ws.Close()
	eventually(t, "detached", func() bool { return !mustGet(t, e, c.id).WSAttached })
	select {
	case ev := <-events:
		t.Fatalf("an ungated termination sent %+v", ev)
	default:
	}
}

func parseRTP(t *testing.T, b []byte) rtp.Header {
	t.Helper()
	var h rtp.Header
	if _, err := h.Unmarshal(b); err != nil {
		t.Fatalf("far end got %x: %v", b, err)
	}
	return h
}
