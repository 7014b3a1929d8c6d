package mediagw

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// outStream is the one RTP stream the far end sees from us. The far end knows a single
// sender (one SSRC, RFC 3550 8), while the gateway has several sources over a call: the
// page's media session, a new one after a reload or a re-attach (a takeover), and the
// DTMF packets the gateway makes itself, possibly before the page sent anything. A SIP
// phone that sees a second SSRC, or the sequence start over, drops the newcomer as late
// or as a collision; so every browser stream is mapped onto the first stream sent:
//
//   - The first browser stream, when nothing was sent before, goes out as it is (no
//     rewrite at all).
//   - Any later browser stream (a new SSRC, or the same one with its sequence started
//     over) is rewritten: our SSRC, sequence numbers
//     continuing from the last one sent, timestamps continuing from where the last
//     stream's timeline has got to by now (never below what was already sent), and the
//     marker bit on its first packet so the far end's jitter buffer resynchronises
//     (RFC 3551 4.1: the marker starts a talkspurt).
//   - DTMF packets take the next sequence numbers and the timeline extrapolated to their
//     start; the browser's packets after them are shifted past their numbers and, if
//     need be, past the event's end (RFC 4733 events share the audio's SSRC, numbering
//     and timeline).
//
// Browser RTCP is passed on as it is: the page sends none; a client that did would
// report under its own SSRC.
type outStream struct {
	mu sync.Mutex // guards everything below; taken once per browser packet

	// started: something was sent toward the far end, so ssrc, lastSeq and the timeline
	// below are ours to continue.
	started bool
	ssrc    uint32
	lastSeq uint16 // last sequence number sent
	// The timeline: lastTS was current at lastAt (unix ns), at clock Hz; floorTS is the
	// earliest timestamp a new stream may start at (past the last packet's audio, or
	// past a DTMF event's end). lastStep is the last audio packet's timestamp step.
	lastTS, floorTS uint32
	lastAt          int64
	lastStep        uint32
	clock           uint32
	pt              uint8
	havePT          bool

	// The browser stream being mapped: its SSRC and the offsets added to its sequence
	// numbers and timestamps.
	inKnown bool
	inSSRC  uint32
	lastIn  uint16 // highest browser sequence number seen in this stream
	seqOff  uint16
	tsOff   uint32
	rewrite bool // ssrc or timestamps differ from the browser's: the header is patched
	resync  bool // recompute seqOff at the next browser packet (after DTMF)
	dtmf    bool // an event is being sent: browser audio is dropped
	// gapped: browser packets were dropped at a closed gate (push-to-talk without the
	// floor); the next one that passes starts a talkspurt, mapped like a new stream.
	gapped bool
}

// outHeader is a browser packet's header as it goes out.
type outHeader struct {
	seq     uint16
	ts      uint32
	ssrc    uint32
	marker  bool
	rewrite bool // ts, ssrc or marker differ from the browser's packet (seq may differ alone)
}

// defaultStepMS is the packet time assumed before a stream has shown its own: 20 ms,
// the usual audio packetization (RFC 3551 4.5).
const defaultStepMS = 20

// outgoing maps one browser packet onto the stream; ok false while DTMF is being sent
// (the packet is dropped). newStream reports a browser SSRC mapped for the first time.
func (s *outStream) outgoing(in rtpInfo, clock uint32, now int64) (out outHeader, newStream, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dtmf {
		return outHeader{}, false, false
	}
	if clock == 0 {
		clock = s.clock
	}
	fresh := !s.inKnown || in.ssrc != s.inSSRC || restarted(in.seq-s.lastIn)
	remapped := fresh || s.gapped
	if remapped {
		// A talkspurt after a closed gate is mapped as a new stream would be: the
		// sequence goes on from the last number sent (RFC 3550: one per packet sent, so
		// no gap the far end would count as loss), the timestamp from where the
		// timeline has got to, with the marker bit (RFC 3551 4.1).
		newStream = fresh
		s.inKnown, s.inSSRC, s.lastIn, s.resync, s.gapped = true, in.ssrc, in.seq, false, false
		if !s.started {
			// The first thing sent: the browser's own stream, untouched.
			s.started, s.ssrc, s.seqOff, s.tsOff, s.rewrite = true, in.ssrc, 0, 0, false
			s.lastSeq = in.seq - 1
		} else {
			s.seqOff = s.lastSeq + 1 - in.seq
			s.tsOff = s.nextTS(now, clock) - in.ts
			s.rewrite = true
			out.marker = true
		}
	}
	if s.resync {
		// After an event: the sequence continues past the events' numbers, and the
		// timeline past the event's end, even when the browser's own line lags behind
		// it (the event was timed on the gateway's clock).
		s.seqOff = s.lastSeq + 1 - in.seq
		if ts := in.ts + s.tsOff; int32(s.floorTS-ts) > 0 {
			s.tsOff += s.floorTS - ts
			s.rewrite = true
		}
		s.resync = false
	}
	if int16(in.seq-s.lastIn) > 0 {
		s.lastIn = in.seq
	}
	out.seq = in.seq + s.seqOff
	out.ts = in.ts + s.tsOff
	out.ssrc = s.ssrc
	out.marker = out.marker || in.marker
	out.rewrite = s.rewrite
	if int16(out.seq-s.lastSeq) > 0 {
		s.lastSeq = out.seq
	}
	if d := out.ts - s.lastTS; int32(d) > 0 || remapped {
		if !remapped && d < clock {
			s.lastStep = d
		}
		s.lastTS, s.lastAt = out.ts, now
		step := s.lastStep
		if step == 0 {
			step = clock * defaultStepMS / 1000
		}
		s.floorTS = out.ts + step
	}
	s.pt, s.havePT = in.pt, true
	if clock > 0 {
		s.clock = clock
	}
	return out, newStream, true
}

// gap records that a browser packet was dropped at a closed gate.
func (s *outStream) gap() {
	s.mu.Lock()
	s.gapped = true
	s.mu.Unlock()
}

// restarted says a step of the browser's sequence numbers (this packet's minus the
// highest seen) starts the sequence over rather than being loss or reordering, as RFC
// 3550 A.1 judges it: a sender that kept its SSRC but started afresh (a page that
// restored its old SSRC) is mapped like a new stream.
func restarted(step uint16) bool {
	return step >= maxDropout && step <= 65535-maxMisorder
}

// nextTS is where the timeline has got to at now: the last timestamp advanced by the
// time since, at least floorTS.
func (s *outStream) nextTS(now int64, clock uint32) uint32 {
	ts := s.lastTS
	if s.lastAt > 0 && now > s.lastAt && clock > 0 {
		ts += uint32(uint64(now-s.lastAt) * uint64(clock) / uint64(time.Second))
	}
	if int32(s.floorTS-ts) > 0 {
		ts = s.floorTS
	}
	return ts
}

// beginDTMF stops browser audio and returns the SSRC and the event's timestamp: the
// timeline extrapolated to now, or, when nothing was sent yet, a random start of a
// stream of our own, which the browser's audio will then be mapped onto.
func (s *outStream) beginDTMF(now int64, clock uint32) (ssrc, ts uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clock == 0 {
		s.clock = clock
	}
	if !s.started {
		var b [10]byte
		_, _ = rand.Read(b[:])
		s.started = true
		s.ssrc = binary.BigEndian.Uint32(b[0:])
		s.lastTS = binary.BigEndian.Uint32(b[4:])
		s.floorTS = s.lastTS
		s.lastSeq = binary.BigEndian.Uint16(b[8:])
		s.lastAt = now
	}
	s.dtmf = true
	ts = s.nextTS(now, s.clock)
	s.lastTS, s.lastAt = ts, now
	return s.ssrc, ts
}

// nextSeq takes the next sequence number for a packet the gateway makes.
func (s *outStream) nextSeq() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastSeq++
	return s.lastSeq
}

// endDTMF lets browser audio through again; end is the timestamp the event lasted to,
// below which no new stream may start.
func (s *outStream) endDTMF(end uint32) {
	s.mu.Lock()
	s.dtmf, s.resync = false, true
	if int32(end-s.floorTS) > 0 {
		s.floorTS = end
	}
	s.mu.Unlock()
}

func (s *outStream) currentSSRC() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ssrc
}

func (s *outStream) currentPT() (uint8, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pt, s.havePT
}
