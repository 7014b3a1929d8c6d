package mixer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Config tunes a Mixer. Zero fields take the values of DefaultConfig.
type Config struct {
	// JitterTarget is how much audio a participant's jitter buffer holds before it starts
	// to play: the delay added to absorb network jitter. Rounded up to 20 ms frames.
	JitterTarget time.Duration
	// JitterDepth is the most audio a jitter buffer holds; a burst beyond it drops the
	// oldest frames. At most 640 ms.
	JitterDepth time.Duration
	// MaxParticipants caps the room.
	MaxParticipants int
	// HearSelf makes every listener hear the whole sum, its own frame included: the echo
	// service is a room of one with HearSelf.
	HearSelf bool
}

// DefaultConfig returns every knob at its default: a 40 ms jitter buffer target (two
// frames: loopback and LAN jitter are a few milliseconds, a Wi-Fi hop tens), a 200 ms
// depth, 64 participants (a demo room; the mix costs the same per participant at any size).
func DefaultConfig() Config {
	return Config{
		JitterTarget:    40 * time.Millisecond,
		JitterDepth:     200 * time.Millisecond,
		MaxParticipants: 64,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.JitterTarget <= 0 {
		c.JitterTarget = d.JitterTarget
	}
	if c.JitterDepth <= 0 {
		c.JitterDepth = d.JitterDepth
	}
	if c.MaxParticipants <= 0 {
		c.MaxParticipants = d.MaxParticipants
	}
	return c
}

// frames converts a duration to whole 20 ms frames, rounding up.
func frames(d time.Duration) int {
	return int((d + FrameDuration - 1) / FrameDuration)
}

// Mixer mixes one room. Add and Remove may run at any time; Tick runs on one goroutine
// (a Scheduler's) every 20 ms.
type Mixer struct {
	cfg           Config
	target, depth int // jitter buffer geometry in frames

	mu    sync.Mutex // guards parts and the tick scratch below; held for a whole tick
	parts []*Participant
	sum   [FrameSamples]int32
	// full holds the whole sum encoded once per codec and tick: everyone who contributed
	// nothing (silent, on hold, without the floor) hears exactly that, so it is encoded
	// once for all of them instead of once each.
	full   [2][FrameBytes]byte
	fullOK [2]bool
	ticks  uint64
}

// New returns an empty mixer.
func New(cfg Config) *Mixer {
	cfg = cfg.withDefaults()
	depth := min(frames(cfg.JitterDepth), jbSlots)
	return &Mixer{cfg: cfg, target: min(frames(cfg.JitterTarget), depth), depth: depth,
		parts: make([]*Participant, 0, min(cfg.MaxParticipants, 16))}
}

// Add makes a participant of the room. Its outgoing stream starts at a random sequence
// number and timestamp (RFC 3550 section 5.1).
func (m *Mixer) Add(pc ParticipantConfig) (*Participant, error) {
	if pc.Sink == nil {
		return nil, ErrNoSink
	}
	if pc.Codec != PCMU && pc.Codec != PCMA {
		return nil, fmt.Errorf("mixer: add participant: %v is not G.711", pc.Codec)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.parts) >= m.cfg.MaxParticipants {
		return nil, fmt.Errorf("mixer: add participant: %w (%d)", ErrFull, m.cfg.MaxParticipants)
	}
	p := newParticipant(pc, m.target, m.depth, uint16(rand.Uint32()), rand.Uint32())
	m.parts = append(m.parts, p)
	return p, nil
}

// Remove takes a participant out of the room; its sink is not called again once Remove
// returns. Removing a participant twice is harmless.
func (m *Mixer) Remove(p *Participant) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, q := range m.parts {
		if q == p {
			m.parts = slices.Delete(m.parts, i, i+1) // clears the freed slot
			return
		}
	}
}

// Len is the number of participants.
func (m *Mixer) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.parts)
}

// Ticks is the number of ticks mixed so far.
func (m *Mixer) Ticks() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ticks
}

// Tick mixes one 20 ms frame: one frame from each jitter buffer into the sum of those
// who may speak, then to each listener the sum without its own frame, encoded in its
// codec and sent to its sink.
func (m *Mixer) Tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ticks++
	clear(m.sum[:])
	for _, p := range m.parts {
		p.contributes = p.take()
		if p.contributes {
			for i, s := range p.pcm {
				m.sum[i] += int32(s)
			}
		}
	}
	m.fullOK = [2]bool{}
	for _, p := range m.parts {
		switch {
		case !p.hear.Load():
			p.silent = true
		case m.cfg.HearSelf || !p.contributes:
			c := p.cfg.Codec
			if !m.fullOK[c] {
				c.encode(m.full[c][:], &m.sum)
				m.fullOK[c] = true
			}
			p.send(m.full[c][:])
		default:
			for i, s := range p.pcm {
				p.mix[i] = m.sum[i] - int32(s)
			}
			out := p.pkt[rtpHeaderLen:]
			p.cfg.Codec.encode(out, &p.mix)
			p.send(out)
		}
		// The timestamp follows the clock whether or not a packet went out, so a
		// listener resumed after hold sees the real time that passed.
		p.ts += FrameSamples
	}
}
