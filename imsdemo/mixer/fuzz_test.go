package mixer

import (
	"encoding/binary"
	"testing"

	"github.com/pion/rtp"
)

// FuzzMixerRTP feeds a room of two with arbitrary datagrams between ticks. The input is
// a list of records [op][len:2][bytes]: op 0 and 1 push the bytes as a packet of
// participant 0 or 1, op 2 ticks, op 3 flips the gates. Whatever comes in, nothing
// panics, the jitter buffers keep their invariants and every packet out is a 20 ms
// G.711 RTP packet.
func FuzzMixerRTP(f *testing.F) {
	tn := &tone{codec: PCMU, freq: 440, amp: 6000, ssrc: 5}
	rec := func(op byte, b []byte) []byte {
		out := []byte{op, 0, 0}
		binary.BigEndian.PutUint16(out[1:], uint16(len(b)))
		return append(out, b...)
	}
	var seed []byte
	for range 4 {
		seed = append(seed, rec(0, tn.next())...)
		seed = append(seed, rec(1, rtpPacket(8, tn.seq, 9, make([]byte, 80)))...)
		seed = append(seed, rec(2, nil)...)
	}
	f.Add(seed)
	f.Add(rec(0, rtpPacket(101, 3, 1, []byte{1, 2, 3, 4})))
	f.Add(append(rec(0, []byte{0x80, 0, 0, 1}), rec(2, nil)...))
	f.Add(append(rec(1, []byte{0xa0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 2}), rec(3, nil)...))

	f.Fuzz(func(t *testing.T, data []byte) {
		m := New(Config{JitterTarget: FrameDuration, JitterDepth: 100 * FrameDuration / 20})
		var bad bool
		sink := SinkFunc(func(pkt []byte) {
			var p rtp.Packet
			if len(pkt) != rtpHeaderLen+FrameBytes || p.Unmarshal(pkt) != nil || p.Version != 2 {
				bad = true
			}
		})
		a, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: sink, IgnorePT: 101})
		b, _ := m.Add(ParticipantConfig{Codec: PCMA, Sink: sink, IgnorePT: -1})
		parts := []*Participant{a, b}
		for len(data) >= 3 {
			op, n := data[0]%4, int(binary.BigEndian.Uint16(data[1:]))
			data = data[3:]
			n = min(n, len(data))
			pkt := data[:n]
			data = data[n:]
			switch op {
			case 0, 1:
				p := parts[op]
				before := p.Stats()
				if err := p.Push(pkt); err != nil && p.Stats().Jitter != before.Jitter {
					t.Fatalf("refused packet (%v) changed the buffer", err)
				}
			case 2:
				m.Tick()
			case 3:
				a.SetSpeak(!a.Speaking())
				b.SetListen(!b.Listening())
			}
			for _, p := range parts {
				p.mu.Lock()
				checkJitter(t, &p.jb)
				p.mu.Unlock()
			}
			if bad {
				t.Fatal("the mixer sent a malformed packet")
			}
		}
	})
}
