package mixer

import (
	"testing"
	"time"

	"github.com/zaf/g711"
)

// Three participants with three tones and two codecs: each hears the two others and not
// itself, in its own codec, as a well-formed RTP stream.
func TestMixerEachHearsTheOthersNotItself(t *testing.T) {
	m := New(Config{})
	tones := []*tone{
		{codec: PCMU, freq: 440, amp: 6000, ssrc: 1},
		{codec: PCMA, freq: 1000, amp: 6000, ssrc: 2},
		{codec: PCMU, freq: 1700, amp: 6000, ssrc: 3},
	}
	sinks := make([]*capture, len(tones))
	parts := make([]*Participant, len(tones))
	for i, tn := range tones {
		sinks[i] = &capture{}
		p, err := m.Add(ParticipantConfig{Codec: tn.codec, SSRC: uint32(100 + i), IgnorePT: -1, Sink: sinks[i]})
		if err != nil {
			t.Fatal(err)
		}
		parts[i] = p
	}
	const ticks = 100
	for range ticks {
		for i, tn := range tones {
			if err := parts[i].Push(tn.next()); err != nil {
				t.Fatal(err)
			}
		}
		m.Tick()
	}
	for i, tn := range tones {
		pkts := sinks[i].packets(t)
		if len(pkts) != ticks {
			t.Fatalf("participant %d got %d packets, want one per tick (%d)", i, len(pkts), ticks)
		}
		for k, p := range pkts {
			if p.PayloadType != tn.codec.PayloadType() || p.SSRC != uint32(100+i) || len(p.Payload) != FrameBytes {
				t.Fatalf("participant %d packet %d: pt %d ssrc %d %d bytes", i, k, p.PayloadType, p.SSRC, len(p.Payload))
			}
			if k > 0 && (p.SequenceNumber != pkts[k-1].SequenceNumber+1 || p.Timestamp != pkts[k-1].Timestamp+FrameSamples) {
				t.Fatalf("participant %d packet %d: seq %d ts %d after seq %d ts %d", i, k,
					p.SequenceNumber, p.Timestamp, pkts[k-1].SequenceNumber, pkts[k-1].Timestamp)
			}
			if p.Marker != (k == 0) {
				t.Fatalf("participant %d packet %d: marker %v", i, k, p.Marker)
			}
		}
		s := samples(t, pkts)
		for j, other := range tones {
			l := level(s, other.freq)
			if j == i && l > 150 {
				t.Errorf("participant %d hears its own %v Hz tone at %.0f", i, other.freq, l)
			}
			if j != i && (l < 4500 || l > 7500) {
				t.Errorf("participant %d hears %v Hz at %.0f, want about 6000", i, other.freq, l)
			}
		}
		t.Logf("participant %d (%v): 440 Hz %.0f, 1000 Hz %.0f, 1700 Hz %.0f", i, tn.codec,
			level(s, 440), level(s, 1000), level(s, 1700))
	}
}

// Loud speakers saturate at full scale instead of wrapping round to the other sign.
func TestMixerClipsTheSum(t *testing.T) {
	for _, codec := range []Codec{PCMU, PCMA} {
		t.Run(codec.String(), func(t *testing.T) {
			m := New(Config{JitterTarget: FrameDuration})
			var loud [FrameSamples]int16
			for i := range loud {
				loud[i] = 30000
				if i%2 == 1 {
					loud[i] = -30000
				}
			}
			enc := func(c Codec) []byte {
				out := make([]byte, FrameBytes)
				var s [FrameSamples]int32
				for i, x := range loud {
					s[i] = int32(x)
				}
				c.encode(out, &s)
				return out
			}
			a, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: &capture{}, IgnorePT: -1})
			b, _ := m.Add(ParticipantConfig{Codec: PCMA, Sink: &capture{}, IgnorePT: -1})
			ear := &capture{}
			m.Add(ParticipantConfig{Codec: codec, Sink: ear, IgnorePT: -1})
			for seq := range uint16(5) {
				a.Push(rtpPacket(0, seq, 1, enc(PCMU)))
				b.Push(rtpPacket(8, seq, 2, enc(PCMA)))
				m.Tick()
			}
			s := samples(t, ear.packets(t))
			if len(s) == 0 {
				t.Fatal("nothing heard")
			}
			peaks := 0
			for i, x := range s {
				if x == 0 {
					continue // the jitter buffer filling
				}
				if i%2 == 0 && x < 30000 || i%2 == 1 && x > -30000 {
					t.Fatalf("sample %d is %d: 60000 of sum must clip to full scale of its own sign", i, x)
				}
				peaks++
			}
			if peaks < 3*FrameSamples {
				t.Fatalf("only %d clipped samples", peaks)
			}
		})
	}
}

// Gates: a participant without the right to speak is not heard, one that does not
// listen gets nothing, and its stream resumes with a marker and a timestamp that kept
// time.
func TestMixerGates(t *testing.T) {
	m := New(Config{})
	ta := &tone{codec: PCMU, freq: 440, amp: 6000, ssrc: 1}
	tb := &tone{codec: PCMU, freq: 1000, amp: 6000, ssrc: 2}
	sa, sb := &capture{}, &capture{}
	a, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: sa, IgnorePT: -1})
	b, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: sb, IgnorePT: -1})
	run := func(n int) {
		for range n {
			a.Push(ta.next())
			b.Push(tb.next())
			m.Tick()
		}
	}
	a.SetSpeak(false)
	run(50)
	if l := level(samples(t, sb.packets(t)), 440); l > 150 {
		t.Fatalf("b hears a's tone at %.0f while a may not speak", l)
	}
	b.SetListen(false)
	before := len(sb.packets(t))
	run(10)
	if got := len(sb.packets(t)); got != before {
		t.Fatalf("b got %d packets while not listening", got-before)
	}
	b.SetListen(true)
	a.SetSpeak(true)
	run(50)
	pk := sb.packets(t)
	resumed := pk[before]
	if !resumed.Marker || resumed.Timestamp-pk[before-1].Timestamp != 11*FrameSamples ||
		resumed.SequenceNumber != pk[before-1].SequenceNumber+1 {
		t.Fatalf("resumed packet: marker %v, ts +%d (want +%d), seq +%d", resumed.Marker,
			resumed.Timestamp-pk[before-1].Timestamp, 11*FrameSamples, resumed.SequenceNumber-pk[before-1].SequenceNumber)
	}
	if l := level(samples(t, pk[before:]), 440); l < 4500 {
		t.Fatalf("b hears a's tone at %.0f after a may speak again", l)
	}
}

// HearSelf is the echo: a room of one hears itself, delayed by the jitter buffer.
func TestMixerHearSelfEchoes(t *testing.T) {
	m := New(Config{HearSelf: true, JitterTarget: 60 * time.Millisecond})
	tn := &tone{codec: PCMA, freq: 700, amp: 8000, ssrc: 9}
	out := &capture{}
	p, _ := m.Add(ParticipantConfig{Codec: PCMA, Sink: out, IgnorePT: -1})
	var sent [][]byte
	for range 60 {
		pl := tn.payload()
		sent = append(sent, pl)
		p.Push(tn.packet(pl))
		m.Tick()
	}
	pk := out.packets(t)
	// Playout starts once three frames are in: the first two ticks are silence, the
	// third plays the first frame.
	for k := 2; k < len(pk); k++ {
		if string(pk[k].Payload) != string(sent[k-2]) {
			t.Fatalf("echo packet %d is not frame %d as sent", k, k-2)
		}
	}
	if l := level(samples(t, pk), 700); l < 7000 {
		t.Fatalf("echo level %.0f", l)
	}
}

// Telephone-event and comfort noise are dropped quietly; other payload types and
// broken packets are refused with a sentinel and change nothing.
func TestMixerPushRefusesBadPackets(t *testing.T) {
	m := New(Config{})
	p, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: &capture{}, IgnorePT: 101})
	frame := make([]byte, FrameBytes)
	good := rtpPacket(0, 1, 1, frame)
	padded := append(append([]byte(nil), good...), 0, 0, 3)
	padded[0] |= 0x20
	badPad := append([]byte(nil), padded...)
	badPad[len(badPad)-1] = 200
	v1 := append([]byte(nil), good...)
	v1[0] = 0x40 | v1[0]&0x3f
	for _, tc := range []struct {
		name string
		pkt  []byte
		want error
	}{
		{"empty", nil, ErrBadRTP},
		{"short header", good[:8], ErrBadRTP},
		{"version 1", v1, ErrBadRTP},
		{"padding longer than the packet", badPad, ErrBadRTP},
		{"unknown payload type", rtpPacket(96, 1, 1, frame), ErrPayloadType},
		{"no payload", rtpPacket(0, 1, 1, nil), ErrFrameSize},
		{"30 ms payload", rtpPacket(0, 1, 1, make([]byte, 240)), ErrFrameSize},
		{"telephone-event", rtpPacket(101, 1, 1, []byte{1, 0, 0, 160}), nil},
		{"comfort noise", rtpPacket(13, 1, 1, []byte{40}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := p.Stats()
			if err := p.Push(tc.pkt); err != tc.want {
				t.Fatalf("Push: %v, want %v", err, tc.want)
			}
			if after := p.Stats(); after.Jitter != before.Jitter || after.Received != before.Received {
				t.Fatalf("a refused packet changed the buffer: %+v → %+v", before, after)
			}
		})
	}
	if err := p.Push(padded); err != nil {
		t.Fatalf("padded packet: %v", err)
	}
	if s := p.Stats(); s.Received != 1 || s.Ignored != 2 || s.Bad != 7 {
		t.Fatalf("counters %+v", s)
	}
}

func TestMixerAddAndRemove(t *testing.T) {
	m := New(Config{MaxParticipants: 2})
	if _, err := m.Add(ParticipantConfig{Codec: PCMU}); err != ErrNoSink {
		t.Fatalf("no sink: %v", err)
	}
	if _, err := m.Add(ParticipantConfig{Codec: Codec(7), Sink: &capture{}}); err == nil {
		t.Fatal("codec 7 accepted")
	}
	a, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: &capture{}})
	m.Add(ParticipantConfig{Codec: PCMU, Sink: &capture{}})
	if _, err := m.Add(ParticipantConfig{Codec: PCMU, Sink: &capture{}}); err == nil {
		t.Fatal("third participant in a room of two")
	}
	m.Remove(a)
	m.Remove(a)
	if m.Len() != 1 {
		t.Fatalf("len %d", m.Len())
	}
	out := &capture{}
	m.Add(ParticipantConfig{Codec: PCMU, Sink: out})
	m.Tick()
	if len(out.packets(t)) != 1 {
		t.Fatal("a listener in a silent room must still get a packet per tick")
	}
}

// The hot path does not allocate: a packet in and a tick out of a room of five.
func TestMixerDoesNotAllocate(t *testing.T) {
	m := New(Config{})
	var parts []*Participant
	var tones []*tone
	var pkts [][]byte
	for i := range 5 {
		p, _ := m.Add(ParticipantConfig{Codec: Codec(i % 2), Sink: SinkFunc(func([]byte) {}), IgnorePT: 101})
		parts = append(parts, p)
		tn := &tone{codec: Codec(i % 2), freq: 300 + 200*float64(i), amp: 5000, ssrc: uint32(i)}
		tones = append(tones, tn)
		pkts = append(pkts, tn.next())
	}
	seq := uint16(0)
	allocs := testing.AllocsPerRun(200, func() {
		for i, p := range parts {
			pk := pkts[i]
			pk[2], pk[3] = byte(seq>>8), byte(seq)
			_ = p.Push(pk)
		}
		seq++
		m.Tick()
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per tick", allocs)
	}
}

// The encoding tables give g711's code for every 16-bit sample.
func TestEncodeTablesMatchG711(t *testing.T) {
	for i := -32768; i <= 32767; i++ {
		var in [FrameSamples]int32
		in[0] = int32(i)
		var out [FrameBytes]byte
		PCMU.encode(out[:], &in)
		if want := g711.EncodeUlawFrame(int16(i)); out[0] != want {
			t.Fatalf("µ-law %d: %#x, want %#x", i, out[0], want)
		}
		PCMA.encode(out[:], &in)
		if want := g711.EncodeAlawFrame(int16(i)); out[0] != want {
			t.Fatalf("A-law %d: %#x, want %#x", i, out[0], want)
		}
	}
	var sil [FrameSamples]int32
	var out [FrameBytes]byte
	for _, c := range []Codec{PCMU, PCMA} {
		c.encode(out[:], &sil)
		if out[0] != c.silence() {
			t.Fatalf("%v silence %#x, want %#x", c, out[0], c.silence())
		}
	}
}
