package mixer

import (
	"sync"
	"testing"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"dsmgw/internal/testpeer"
)

// capture is a Sink that keeps copies of the packets it gets.
type capture struct {
	mu   sync.Mutex
	pkts [][]byte
}

func (c *capture) WriteRTP(pkt []byte) {
	c.mu.Lock()
	c.pkts = append(c.pkts, append([]byte(nil), pkt...))
	c.mu.Unlock()
}

func (c *capture) packets(t *testing.T) []rtp.Packet {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]rtp.Packet, len(c.pkts))
	for i, b := range c.pkts {
		if err := out[i].Unmarshal(b); err != nil {
			t.Fatalf("packet %d the mixer sent does not parse: %v", i, err)
		}
	}
	return out
}

// samples decodes the payloads of packets by their payload type.
func samples(t *testing.T, pkts []rtp.Packet) []int16 {
	t.Helper()
	var out []int16
	for _, p := range pkts {
		for _, b := range p.Payload {
			switch p.PayloadType {
			case 0:
				out = append(out, g711.DecodeUlawFrame(b))
			case 8:
				out = append(out, g711.DecodeAlawFrame(b))
			default:
				t.Fatalf("payload type %d", p.PayloadType)
			}
		}
	}
	return out
}

// tone is a sender of a sine tone in 20 ms RTP packets.
type tone struct {
	codec Codec
	freq  float64
	amp   float64
	ssrc  uint32
	seq   uint16
	n     int // samples sent
}

// frame returns the tone's next frame as G.711 bytes.
func (s *tone) payload() []byte {
	var pcm [FrameSamples]int16
	testpeer.Sine(pcm[:], SampleRate, s.freq, s.amp, s.n)
	s.n += FrameSamples
	out := make([]byte, FrameBytes)
	for i, x := range pcm {
		if s.codec == PCMA {
			out[i] = g711.EncodeAlawFrame(x)
		} else {
			out[i] = g711.EncodeUlawFrame(x)
		}
	}
	return out
}

// next returns the tone's next RTP packet.
func (s *tone) next() []byte {
	return s.packet(s.payload())
}

func (s *tone) packet(payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: s.codec.PayloadType(), SequenceNumber: s.seq,
		Timestamp: uint32(s.n), SSRC: s.ssrc}, Payload: payload}
	s.seq++
	b, err := p.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}

// rtpPacket builds a packet of any payload type.
func rtpPacket(pt uint8, seq uint16, ssrc uint32, payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq,
		Timestamp: uint32(seq) * FrameSamples, SSRC: ssrc}, Payload: payload}
	b, _ := p.Marshal()
	return b
}

// level is the amplitude of freq in samples, skipping the first 100 ms (jitter buffer
// fill and the concealment fade at the edges).
func level(s []int16, freq float64) float64 {
	if len(s) > 800 {
		s = s[800:]
	}
	return testpeer.ToneLevel(s, SampleRate, freq)
}
