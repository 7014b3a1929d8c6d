package mixer

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// rtpHeaderLen is the size of the RTP headers the mixer sends (no CSRC, no extension).
const rtpHeaderLen = 12

// Sink takes the RTP packets the mixer produces for one participant. WriteRTP runs on the
// mixer's tick goroutine and must not block (a UDP send does not); pkt is reused after it
// returns.
type Sink interface {
	WriteRTP(pkt []byte)
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(pkt []byte)

// WriteRTP calls f.
func (f SinkFunc) WriteRTP(pkt []byte) { f(pkt) }

// ParticipantConfig describes one participant's media.
type ParticipantConfig struct {
	// Codec is what the participant receives (its answer's codec). It may send either
	// G.711 law: each packet is decoded by its own payload type.
	Codec Codec
	// SSRC identifies the stream the mixer sends to the participant.
	SSRC uint32
	// IgnorePT is a payload type dropped without complaint (the negotiated
	// telephone-event); -1 for none. Comfort noise (13) is always ignored.
	IgnorePT int
	// Sink receives the participant's mix.
	Sink Sink
}

// ParticipantStats are a participant's packet counters.
type ParticipantStats struct {
	Received uint64 // audio packets accepted
	Ignored  uint64 // telephone-event and comfort noise packets
	Bad      uint64 // packets refused by Push
	Sent     uint64 // packets sent to the participant
	Jitter   JitterStats
}

// Participant is one member of a Mixer. Push may run on any goroutine (one at a time
// per participant is usual: its socket reader); everything else of a tick runs on the
// mixer's tick goroutine.
type Participant struct {
	cfg   ParticipantConfig
	speak atomic.Bool // may contribute to the mix (hold, floor control)
	hear  atomic.Bool // receives the mix (hold)
	// lastRecv is the time of the last packet of any kind (unix nanoseconds), for
	// media timeouts.
	lastRecv atomic.Int64
	ignored  atomic.Uint64
	bad      atomic.Uint64
	recv     atomic.Uint64
	sent     atomic.Uint64

	mu  sync.Mutex // guards jb and hdr: Push against the tick
	jb  jitterBuffer
	hdr rtp.Header // parse target, reused so Push does not allocate

	// Owned by the tick goroutine.
	enc         [FrameBytes]byte    // payload popped from the jitter buffer
	pcm         [FrameSamples]int16 // this tick's decoded or concealed frame
	mix         [FrameSamples]int32 // this participant's mix before encoding
	pkt         [rtpHeaderLen + FrameBytes]byte
	contributes bool   // pcm is part of this tick's sum
	haveLast    bool   // pcm holds the last good frame (for concealment)
	fade        int    // lost frames concealed since the last good one, plus one
	seq         uint16 // next outgoing sequence number
	ts          uint32 // outgoing timestamp of this tick
	silent      bool   // nothing sent last tick: the next packet carries the marker
}

func newParticipant(cfg ParticipantConfig, target, depth int, seq uint16, ts uint32) *Participant {
	p := &Participant{cfg: cfg, jb: newJitterBuffer(target, depth), seq: seq, ts: ts, silent: true}
	p.speak.Store(true)
	p.hear.Store(true)
	return p
}

// SetSpeak opens or closes the participant's way into the mix: closed, its audio is
// dropped (on hold, or without the floor in a talk group).
func (p *Participant) SetSpeak(on bool) { p.speak.Store(on) }

// SetListen starts or stops the mix toward the participant (stopped on hold).
func (p *Participant) SetListen(on bool) { p.hear.Store(on) }

// Speaking reports whether the participant may contribute to the mix.
func (p *Participant) Speaking() bool { return p.speak.Load() }

// Listening reports whether the participant receives the mix.
func (p *Participant) Listening() bool { return p.hear.Load() }

// SSRC is the SSRC of the stream sent to the participant.
func (p *Participant) SSRC() uint32 { return p.cfg.SSRC }

// Codec is the codec of the stream sent to the participant.
func (p *Participant) Codec() Codec { return p.cfg.Codec }

// LastReceived is when the participant last sent a packet (zero time: never).
func (p *Participant) LastReceived() time.Time {
	n := p.lastRecv.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Stats returns the participant's counters.
func (p *Participant) Stats() ParticipantStats {
	p.mu.Lock()
	js := p.jb.stats
	p.mu.Unlock()
	return ParticipantStats{Received: p.recv.Load(), Ignored: p.ignored.Load(), Bad: p.bad.Load(),
		Sent: p.sent.Load(), Jitter: js}
}

// Push takes one RTP packet received from the participant. G.711 audio of either law
// goes into the jitter buffer; the ignored payload types are counted and dropped. It
// returns ErrBadRTP, ErrPayloadType or ErrFrameSize (unwrapped) for a packet it refuses;
// nothing changes then but a counter. It does not allocate and does not keep pkt.
func (p *Participant) Push(pkt []byte) error {
	p.mu.Lock()
	err := p.push(pkt)
	p.mu.Unlock()
	if err != nil {
		p.bad.Add(1)
	}
	return err
}

func (p *Participant) push(pkt []byte) error {
	n, err := p.hdr.Unmarshal(pkt)
	if err != nil || p.hdr.Version != 2 {
		return ErrBadRTP
	}
	end := len(pkt)
	if p.hdr.Padding {
		pad := int(pkt[end-1])
		if pad == 0 || pad > end-n {
			return ErrBadRTP
		}
		end -= pad
	}
	payload := pkt[n:end]
	codec, ok := codecOfPT(p.hdr.PayloadType)
	if !ok {
		if int(p.hdr.PayloadType) == p.cfg.IgnorePT || p.hdr.PayloadType == ptCN {
			p.lastRecv.Store(time.Now().UnixNano())
			p.ignored.Add(1)
			return nil
		}
		return ErrPayloadType
	}
	if len(payload) == 0 || len(payload) > FrameBytes {
		return ErrFrameSize
	}
	p.lastRecv.Store(time.Now().UnixNano())
	p.recv.Add(1)
	p.jb.push(p.hdr.SSRC, p.hdr.SequenceNumber, codec, payload)
	return nil
}

// take pops this tick's frame into pcm and reports whether the participant contributes
// to the sum. Concealment of a lost frame repeats the last good one at half the level,
// then a quarter, then gives silence: enough to hide a single loss without a click.
func (p *Participant) take() bool {
	p.mu.Lock()
	kind, n, codec := p.jb.pop(p.enc[:])
	p.mu.Unlock()
	switch kind {
	case frameAudio:
		codec.decode(&p.pcm, p.enc[:n])
		p.haveLast, p.fade = true, 1
	case frameLost:
		if !p.haveLast || p.fade > 2 {
			p.haveLast = false
			return false
		}
		for i := range p.pcm {
			p.pcm[i] >>= 1 // cumulative: a half, then a quarter
		}
		p.fade++
	default:
		p.haveLast = false
		return false
	}
	return p.speak.Load()
}

// send encodes mix into the participant's codec and hands the packet to its sink.
func (p *Participant) send(payload []byte) {
	h := rtp.Header{Version: 2, Marker: p.silent, PayloadType: p.cfg.Codec.PayloadType(),
		SequenceNumber: p.seq, Timestamp: p.ts, SSRC: p.cfg.SSRC}
	if _, err := h.MarshalTo(p.pkt[:rtpHeaderLen]); err != nil {
		return // cannot happen: the buffer fits a header without CSRC or extension
	}
	copy(p.pkt[rtpHeaderLen:], payload)
	p.cfg.Sink.WriteRTP(p.pkt[:])
	p.seq++
	p.silent = false
	p.sent.Add(1)
}
