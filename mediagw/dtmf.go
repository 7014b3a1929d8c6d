package mediagw

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/pion/rtp"
)

// dtmfPacketInterval is the spacing of telephone-event packets: the usual 20 ms audio
// packetization, so the far end sees the same cadence as the audio it replaces.
const dtmfPacketInterval = 20 * time.Millisecond

// dtmfEndRepeats is how often the final (E bit) packet is sent: RFC 4733 2.5.1.4 asks
// for three, so a lost packet does not stretch the tone.
const dtmfEndRepeats = 3

// dtmfVolume is the power level field: -10 dBm0, a typical DTMF level.
const dtmfVolume = 10

// maxDTMFQueue bounds pending digits per termination.
const maxDTMFQueue = 64

// dtmfDigit is one queued event.
type dtmfDigit struct {
	event    uint8
	duration time.Duration
	gap      time.Duration
}

// dtmfEvent maps a digit to its RFC 4733 event code.
func dtmfEvent(c byte) (uint8, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c == '*':
		return 10, true
	case c == '#':
		return 11, true
	case c >= 'A' && c <= 'D':
		return 12 + c - 'A', true
	case c >= 'a' && c <= 'd':
		return 12 + c - 'a', true
	}
	return 0, false
}

// parseDTMF validates a DTMFRequest and fills its defaults.
func parseDTMF(req DTMFRequest) ([]dtmfDigit, error) {
	if len(req.Digits) == 0 || len(req.Digits) > maxDTMFQueue {
		return nil, fmt.Errorf("%w: digits: want 1-%d", ErrBadRequest, maxDTMFQueue)
	}
	dur, gap := req.DurationMS, req.GapMS
	if dur == 0 {
		dur = 100
	}
	if gap == 0 {
		gap = 60
	}
	// 40 ms is the shortest tone receivers reliably detect (ITU-T Q.24); 5 s is far
	// beyond any real key press.
	if dur < 40 || dur > 5000 {
		return nil, fmt.Errorf("%w: duration_ms %d out of 40-5000", ErrBadRequest, dur)
	}
	if gap < 0 || gap > 5000 {
		return nil, fmt.Errorf("%w: gap_ms %d out of 0-5000", ErrBadRequest, gap)
	}
	out := make([]dtmfDigit, 0, len(req.Digits))
	for i := 0; i < len(req.Digits); i++ {
		ev, ok := dtmfEvent(req.Digits[i])
		if !ok {
			return nil, fmt.Errorf("%w: digit %q not one of 0-9 * # A-D", ErrBadRequest, req.Digits[i])
		}
		out = append(out, dtmfDigit{event: ev, duration: time.Duration(dur) * time.Millisecond,
			gap: time.Duration(gap) * time.Millisecond})
	}
	return out, nil
}

// queueDTMF appends digits and starts the sender if it is idle.
func (t *termination) queueDTMF(digits []dtmfDigit) error {
	p := t.peer.Load()
	if p == nil {
		return fmt.Errorf("%w: termination %s has no remote yet", ErrConflict, t.id)
	}
	if !p.pts.eventOK {
		return fmt.Errorf("%w: no telephone-event payload type negotiated", ErrConflict)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return fmt.Errorf("%w: termination %s ended", ErrNotFound, t.id)
	}
	if len(t.dtmfQueue)+len(digits) > maxDTMFQueue {
		return fmt.Errorf("%w: %d digits already pending", ErrConflict, len(t.dtmfQueue))
	}
	t.dtmfQueue = append(t.dtmfQueue, digits...)
	if !t.dtmfRunning {
		t.dtmfRunning = true
		t.wg.Add(1)
		go t.runDTMF()
	}
	return nil
}

// runDTMF sends queued digits one after the other and exits when the queue is empty.
func (t *termination) runDTMF() {
	defer t.wg.Done()
	for {
		t.mu.Lock()
		if len(t.dtmfQueue) == 0 || t.ended {
			t.dtmfRunning = false
			t.mu.Unlock()
			return
		}
		d := t.dtmfQueue[0]
		t.dtmfQueue = t.dtmfQueue[1:]
		t.mu.Unlock()
		if !t.sendDigit(d) {
			return
		}
		select {
		case <-t.done:
			return
		case <-time.After(d.gap):
		}
	}
}

// sendDigit sends one event: packets every 20 ms with the same timestamp (the event
// start) and a growing duration, the marker bit on the first, then the final duration
// three times with the E bit. False when the termination ended meanwhile.
func (t *termination) sendDigit(d dtmfDigit) bool {
	p := t.peer.Load()
	if p == nil || !p.pts.eventOK {
		return true
	}
	clock := p.pts.clock[p.pts.event]
	step := uint32(uint64(clock) * uint64(dtmfPacketInterval) / uint64(time.Second))
	total := uint64(clock) * uint64(d.duration) / uint64(time.Second)
	if total > 0xffff {
		// The duration field is 16 bits (RFC 4733 2.5.2.3 would segment longer events;
		// at 8 kHz the 5 s API limit fits, at higher clocks the tone is shortened).
		total = 0xffff
	}
	ssrc, ts := t.out.beginDTMF(time.Now().UnixNano(), clock)
	defer t.out.endDTMF(ts + uint32(total))
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.pts.event, SSRC: ssrc, Timestamp: ts},
		Payload: make([]byte, 4)}
	buf := make([]byte, 0, 64)
	send := func(dur uint32, end, marker bool) {
		pkt.Header.Marker = marker
		pkt.Header.SequenceNumber = t.out.nextSeq()
		pkt.Payload[0] = d.event
		pkt.Payload[1] = dtmfVolume
		if end {
			pkt.Payload[1] |= 0x80
		}
		binary.BigEndian.PutUint16(pkt.Payload[2:], uint16(dur))
		b, err := pkt.Header.MarshalTo(buf[:cap(buf)])
		if err != nil {
			return
		}
		out := append(buf[:b], pkt.Payload...)
		cur := t.peer.Load()
		if cur == nil || cur.hold {
			t.drop(dropHeld)
			return
		}
		if why := t.sendUDP(out, cur, false); why != dropNone {
			t.drop(why)
			return
		}
		t.c.dtmf.Add(1)
		t.g.m.dtmf.Inc()
	}
	tick := time.NewTicker(dtmfPacketInterval)
	defer tick.Stop()
	first := true
	for dur := uint64(step); dur < total; dur += uint64(step) {
		send(uint32(dur), false, first)
		first = false
		select {
		case <-t.done:
			return false
		case <-tick.C:
		}
	}
	for i := 0; i < dtmfEndRepeats; i++ {
		send(uint32(total), true, first)
		first = false
	}
	return true
}
