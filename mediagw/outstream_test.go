package mediagw

// The far end sees one stream from the gateway (outstream.go), whatever happens on the
// browser side: DTMF before the page's first packet, a re-attach with a new SSRC, a page
// that starts its sequence over.

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
)

// farStream reads n packets at the far end.
func farStream(t *testing.T, p *peer, n int) []rtp.Packet {
	t.Helper()
	out := make([]rtp.Packet, 0, n)
	for len(out) < n {
		var pk rtp.Packet
		if err := pk.Unmarshal(recvUDP(t, p.rtp)); err != nil {
			t.Fatalf("far end got an undecodable packet: %v", err)
		}
		out = append(out, pk)
	}
	return out
}

// dtmfIdle waits until the termination sends no event any more, so the browser's next
// packets are relayed rather than dropped as dtmf (the counts below are exact).
func dtmfIdle(t *testing.T, e *env, id string) {
	t.Helper()
	term := e.gw.lookup(id)
	eventually(t, "dtmf sender idle", func() bool {
		term.out.mu.Lock()
		defer term.out.mu.Unlock()
		term.mu.Lock()
		defer term.mu.Unlock()
		return !term.out.dtmf && !term.dtmfRunning
	})
}

// sendAudio sends n browser packets of one stream, paced like audio (20 ms of timestamp
// each; sent back to back, which the mapping must survive too).
func sendAudio(t *testing.T, ws *websocket.Conn, ssrc uint32, seq uint16, ts uint32, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		sendWS(t, ws, rtpPacket(0, seq+uint16(i), ts+uint32(160*i), ssrc, 160))
	}
}

// checkOneStream holds what a SIP phone needs to accept everything as one stream: one
// SSRC, sequence numbers without a gap or a step back, timestamps that never go back
// (an event's packets share theirs; audio moves on), and audio after an event starting
// past its end.
func checkOneStream(t *testing.T, pkts []rtp.Packet) {
	t.Helper()
	var evEnd uint32
	var lastAudio uint32
	haveAudio := false
	for i, pk := range pkts {
		if pk.SSRC != pkts[0].SSRC {
			t.Fatalf("packet %d: SSRC %#x, the stream's is %#x", i, pk.SSRC, pkts[0].SSRC)
		}
		if i > 0 {
			prev := pkts[i-1]
			if pk.SequenceNumber != prev.SequenceNumber+1 {
				t.Fatalf("packet %d: sequence %d after %d", i, pk.SequenceNumber, prev.SequenceNumber)
			}
			if d := int32(pk.Timestamp - prev.Timestamp); d < 0 {
				t.Fatalf("packet %d: timestamp %d goes back from %d", i, pk.Timestamp, prev.Timestamp)
			}
		}
		switch pk.PayloadType {
		case 101:
			evEnd = pk.Timestamp + uint32(binary.BigEndian.Uint16(pk.Payload[2:]))
		case 0:
			if haveAudio && int32(pk.Timestamp-lastAudio) <= 0 {
				t.Fatalf("packet %d: audio timestamp %d not after %d", i, pk.Timestamp, lastAudio)
			}
			if evEnd != 0 && int32(pk.Timestamp-evEnd) < 0 {
				t.Fatalf("packet %d: audio at %d inside the event before it, which ends at %d", i, pk.Timestamp, evEnd)
			}
			lastAudio, haveAudio = pk.Timestamp, true
		}
	}
}

// DTMF before the page's first packet opens a stream of the gateway's own; the page's
// audio is then carried on in it (the defect the topology test found: baresip dropped
// the audio as late packets of a second stream).
func TestOneStreamDTMFFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	if err := e.cl.SendDTMF(context.Background(), c.id, DTMFRequest{Digits: "5", DurationMS: 100}); err != nil {
		t.Fatal(err)
	}
	pkts := farStream(t, p, 7) // 100 ms: 4 packets, then the end three times
	dtmfIdle(t, e, c.id)
	sendAudio(t, c.ws, 0xa1a1, 40000, 123456, 30)
	pkts = append(pkts, farStream(t, p, 30)...)
	checkOneStream(t, pkts)
	if a := pkts[7]; a.PayloadType != 0 || !a.Marker {
		t.Errorf("first audio packet pt %d marker %v, want PCMU with the marker", a.PayloadType, a.Marker)
	}
	if pkts[0].SSRC == 0xa1a1 {
		t.Errorf("the events went out under the browser's SSRC, which did not exist yet")
	}
}

// Audio, DTMF, a re-attach with a new browser SSRC and sequence, audio, DTMF, audio, and
// a page that restarts its sequence under the same SSRC: one stream throughout.
func TestOneStreamReattach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	ctx := context.Background()
	sendAudio(t, c.ws, 0xa1a1, 100, 5000, 30)
	pkts := farStream(t, p, 30)
	if err := e.cl.SendDTMF(ctx, c.id, DTMFRequest{Digits: "1", DurationMS: 100}); err != nil {
		t.Fatal(err)
	}
	pkts = append(pkts, farStream(t, p, 7)...)
	dtmfIdle(t, e, c.id)

	// The page reloads: a fresh URL, a new WebSocket that replaces the old one, a new
	// media session with its own SSRC, sequence and timestamps.
	mu, err := e.cl.NewURL(ctx, c.id)
	if err != nil {
		t.Fatal(err)
	}
	ws2 := dialWS(t, mu.URL)
	_ = c.ws.SetReadDeadline(time.Now().Add(deadline))
	if _, _, err := c.ws.ReadMessage(); !websocket.IsCloseError(err, wsCloseReplaced) {
		t.Fatalf("old websocket: %v, want close %d", err, wsCloseReplaced)
	}
	sendAudio(t, ws2, 0xb2b2, 60000, 4000000000, 30) // wraps its sequence on the way
	pkts = append(pkts, farStream(t, p, 30)...)
	if err := e.cl.SendDTMF(ctx, c.id, DTMFRequest{Digits: "2", DurationMS: 100}); err != nil {
		t.Fatal(err)
	}
	pkts = append(pkts, farStream(t, p, 7)...)
	dtmfIdle(t, e, c.id)
	sendAudio(t, ws2, 0xb2b2, 60030, 4000000000+160*30, 10)
	pkts = append(pkts, farStream(t, p, 10)...)
	// Same SSRC, sequence started over (a page that kept its SSRC across a restart).
	sendAudio(t, ws2, 0xb2b2, 7, 42, 10)
	pkts = append(pkts, farStream(t, p, 10)...)

	checkOneStream(t, pkts)
	if pkts[0].SSRC != 0xa1a1 {
		t.Errorf("stream SSRC %#x, want the first browser stream's 0xa1a1 (passed on untouched)", pkts[0].SSRC)
	}
	for _, i := range []int{0, 37, 84} {
		if pkts[i].PayloadType != 0 {
			t.Fatalf("packet %d is not audio", i)
		}
	}
	if pkts[0].SequenceNumber != 100 || pkts[0].Timestamp != 5000 {
		t.Errorf("first stream rewritten: seq %d ts %d", pkts[0].SequenceNumber, pkts[0].Timestamp)
	}
	if !pkts[37].Marker || !pkts[84].Marker {
		t.Errorf("a new browser stream's first packet carries no marker (%v, %v)", pkts[37].Marker, pkts[84].Marker)
	}
}

// The mapping alone, packet by packet.
func TestOutStreamMapping(t *testing.T) {
	t.Parallel()
	var s outStream
	now := time.Now().UnixNano()
	ms := int64(time.Millisecond)
	// First stream: untouched.
	o, isNew, ok := s.outgoing(rtpInfo{pt: 0, seq: 10, ts: 1000, ssrc: 1}, 8000, now)
	if !ok || !isNew || o.rewrite || o.seq != 10 || o.ts != 1000 || o.ssrc != 1 || o.marker {
		t.Fatalf("first packet %+v new %v", o, isNew)
	}
	o, isNew, _ = s.outgoing(rtpInfo{pt: 0, seq: 11, ts: 1160, ssrc: 1}, 8000, now+20*ms)
	if isNew || o.rewrite || o.seq != 11 || o.ts != 1160 {
		t.Fatalf("second packet %+v", o)
	}
	// A new SSRC 100 ms later: our SSRC, the next sequence number, the timeline moved on
	// by the 100 ms (800 at 8 kHz), the marker.
	o, isNew, _ = s.outgoing(rtpInfo{pt: 0, seq: 5000, ts: 77, ssrc: 2}, 8000, now+120*ms)
	if !isNew || !o.rewrite || o.ssrc != 1 || o.seq != 12 || o.ts != 1160+800 || !o.marker {
		t.Fatalf("new stream %+v", o)
	}
	o, _, _ = s.outgoing(rtpInfo{pt: 0, seq: 5001, ts: 237, ssrc: 2}, 8000, now+140*ms)
	if o.seq != 13 || o.ts != 1160+800+160 || o.marker {
		t.Fatalf("new stream's second packet %+v", o)
	}
	// A new SSRC at once (no time passed): still past the last packet's audio.
	o, _, _ = s.outgoing(rtpInfo{pt: 0, seq: 1, ts: 1, ssrc: 3}, 8000, now+140*ms)
	if o.seq != 14 || o.ts != 1160+800+160+160 {
		t.Fatalf("immediate new stream %+v", o)
	}
	// A reordered packet of the current stream keeps its place and does not restart it.
	o, isNew, _ = s.outgoing(rtpInfo{pt: 0, seq: 0, ts: 0, ssrc: 3}, 8000, now+141*ms)
	if isNew || o.seq != 13 {
		t.Fatalf("reordered packet %+v new %v", o, isNew)
	}
}

// FuzzOutStream feeds the mapping any mix of browser streams (SSRC, sequence and
// timestamp steps from the input, reordering and restarts included) and DTMF events: the
// far end always sees one SSRC, and every new browser stream and every event continues
// the sequence right after the last number sent, a new stream with the marker.
func FuzzOutStream(f *testing.F) {
	f.Add([]byte{0, 1, 0, 160, 0, 1, 0, 160, 1, 200, 9, 1, 2, 0, 1, 0, 160})
	f.Add([]byte{2, 3, 0, 0, 0, 0, 0, 0, 2, 4})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0, 0x80, 0, 0, 1, 0, 0, 0, 3})
	f.Add([]byte{0, 1, 1, 20, 6, 0, 0, 20, 6, 0, 0, 20, 0, 3, 3, 20, 0, 1, 1, 20})
	f.Fuzz(func(t *testing.T, ops []byte) {
		var s outStream
		now := int64(1_000_000_000)
		seqs := map[uint32]uint16{}
		tss := map[uint32]uint32{}
		var ssrc uint32
		started := false
		var lastSeq uint16
		gapped := false // a packet was dropped at a closed gate since the last one sent
		note := func(o outHeader, fresh bool) {
			if started && o.ssrc != ssrc {
				t.Fatalf("SSRC %#x after %#x", o.ssrc, ssrc)
			}
			if started && fresh && o.seq != lastSeq+1 {
				t.Fatalf("new stream or event at sequence %d after %d", o.seq, lastSeq)
			}
			if !started || int16(o.seq-lastSeq) > 0 {
				lastSeq = o.seq
			}
			ssrc, started = o.ssrc, true
		}
		for i := 0; i+4 <= len(ops); i += 4 {
			op, a, b, c := ops[i], ops[i+1], ops[i+2], ops[i+3]
			now += int64(c) * int64(time.Millisecond)
			if op%8 == 7 { // a DTMF event of a%4+1 packets
				ev, ts := s.beginDTMF(now, 8000)
				for k := 0; k <= int(a%4); k++ {
					note(outHeader{ssrc: ev, ts: ts, seq: s.nextSeq()}, k == 0)
				}
				s.endDTMF(ts + 800)
				continue
			}
			if op%8 == 6 { // a push-to-talk gate dropped a packet
				s.gap()
				gapped = true
				continue
			}
			in := uint32(op % 4)
			seqs[in] += uint16(int8(a))
			tss[in] += uint32(int8(b)) * 160
			o, fresh, ok := s.outgoing(rtpInfo{pt: 0, seq: seqs[in], ts: tss[in], ssrc: in}, 8000, now)
			if !ok {
				t.Fatal("audio dropped with no event running")
			}
			if (fresh || gapped) && started && !o.marker {
				t.Fatalf("new stream or talkspurt without the marker")
			}
			note(o, fresh || gapped)
			gapped = false
		}
	})
}
