package mixer

import (
	"testing"
)

// jbRun pushes the packets of each step (by sequence number) then pops once, and returns
// what each pop gave: the sequence number of the frame played (each frame's payload is
// its sequence number), -1 for a concealed loss, -2 for nothing.
func jbRun(t *testing.T, j *jitterBuffer, steps [][]uint16) []int {
	t.Helper()
	var out []int
	buf := make([]byte, FrameBytes)
	for _, step := range steps {
		for _, seq := range step {
			j.push(7, seq, PCMU, []byte{byte(seq >> 8), byte(seq)})
		}
		kind, n, _ := j.pop(buf)
		switch kind {
		case frameAudio:
			if n != 2 {
				t.Fatalf("frame of %d bytes", n)
			}
			out = append(out, int(buf[0])<<8|int(buf[1]))
		case frameLost:
			out = append(out, -1)
		default:
			out = append(out, -2)
		}
		checkJitter(t, j)
	}
	return out
}

// checkJitter verifies the buffer's invariants: count is the number of valid slots, all
// of them within depth of the playout point.
func checkJitter(t testing.TB, j *jitterBuffer) {
	t.Helper()
	valid := 0
	for _, s := range j.slots {
		if !s.valid {
			continue
		}
		valid++
		if d := int(int16(s.seq - j.next)); d < 0 || d >= j.depth {
			t.Fatalf("slot of seq %d is %d frames from the playout point %d (depth %d)", s.seq, d, j.next, j.depth)
		}
	}
	if valid != j.count || j.count > j.depth {
		t.Fatalf("count %d, valid slots %d, depth %d", j.count, valid, j.depth)
	}
}

func seqs(from, to uint16) [][]uint16 {
	var out [][]uint16
	for s := from; s != to+1; s++ {
		out = append(out, []uint16{s})
	}
	return out
}

func TestJitterBuffer(t *testing.T) {
	for _, tc := range []struct {
		name          string
		target, depth int
		steps         [][]uint16
		want          []int
		check         func(t *testing.T, s JitterStats)
	}{
		{
			name: "in order after a prefill of two", target: 2, depth: 10,
			steps: seqs(10, 15),
			want:  []int{-2, 10, 11, 12, 13, 14},
		},
		{
			name: "reordered packets come out in order", target: 2, depth: 10,
			steps: [][]uint16{{11}, {10}, {13}, {12}, {15, 14}, {}, {}},
			want:  []int{-2, 10, 11, 12, 13, 14, 15},
		},
		{
			name: "an earlier packet during the prefill moves the start back", target: 3, depth: 10,
			steps: [][]uint16{{5}, {4}, {3}, {6}, {}},
			want:  []int{-2, -2, 3, 4, 5},
		},
		{
			name: "a loss is concealed and play goes on", target: 2, depth: 10,
			steps: [][]uint16{{1}, {2}, {4}, {5}, {6}, {7}},
			want:  []int{-2, 1, 2, -1, 4, 5},
			check: func(t *testing.T, s JitterStats) {
				if s.Lost != 1 {
					t.Errorf("lost %d", s.Lost)
				}
			},
		},
		{
			name: "a packet after its turn is late and dropped", target: 2, depth: 10,
			steps: [][]uint16{{1}, {2}, {4}, {}, {3, 5}},
			want:  []int{-2, 1, 2, -1, 4},
			check: func(t *testing.T, s JitterStats) {
				if s.Late != 1 {
					t.Errorf("late %d", s.Late)
				}
			},
		},
		{
			name: "duplicates are dropped", target: 2, depth: 10,
			steps: [][]uint16{{1, 1}, {2, 2}, {3}},
			want:  []int{-2, 1, 2},
			check: func(t *testing.T, s JitterStats) {
				if s.Duplicate != 2 {
					t.Errorf("duplicate %d", s.Duplicate)
				}
			},
		},
		{
			name: "sequence numbers wrap", target: 2, depth: 10,
			steps: seqs(65533, 3),
			want:  []int{-2, 65533, 65534, 65535, 0, 1, 2},
		},
		{
			name: "a burst beyond the depth drops the oldest", target: 2, depth: 4,
			steps: [][]uint16{{1}, {2}, {3, 4, 5, 6, 7}, {}, {}},
			want:  []int{-2, 1, 4, 5, 6},
			check: func(t *testing.T, s JitterStats) {
				if s.Overflow != 2 {
					t.Errorf("overflow %d", s.Overflow)
				}
			},
		},
		{
			name: "a jump of the sequence starts over", target: 2, depth: 10,
			steps: [][]uint16{{1}, {2}, {3}, {5000}, {5001}, {5002}},
			want:  []int{-2, 1, 2, -2, 5000, 5001},
			check: func(t *testing.T, s JitterStats) {
				if s.Resyncs != 1 {
					t.Errorf("resyncs %d", s.Resyncs)
				}
			},
		},
		{
			name: "a pause of the sender refills from its next packet", target: 2, depth: 10,
			steps: [][]uint16{{1}, {2}, {}, {}, {}, {}, {}, {3}, {4}, {5}},
			// Two frames played, three ticks concealed, then the buffer waits; packets 3
			// and 4 (numbers continue over a pause) fill it again.
			want: []int{-2, 1, 2, -1, -1, -1, -2, -2, 3, 4},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := newJitterBuffer(tc.target, tc.depth)
			got := jbRun(t, &j, tc.steps)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			if tc.check != nil {
				tc.check(t, j.stats)
			}
		})
	}
}

// A new SSRC is a new stream: the buffer starts over with it.
func TestJitterBufferNewSSRC(t *testing.T) {
	j := newJitterBuffer(1, 10)
	buf := make([]byte, FrameBytes)
	j.push(1, 100, PCMU, []byte{1})
	if k, _, _ := j.pop(buf); k != frameAudio || buf[0] != 1 {
		t.Fatalf("first stream: %v %d", k, buf[0])
	}
	j.push(2, 9, PCMA, []byte{2})
	k, _, c := j.pop(buf)
	if k != frameAudio || buf[0] != 2 || c != PCMA || j.stats.Resyncs != 1 {
		t.Fatalf("second stream: %v %d %v resyncs %d", k, buf[0], c, j.stats.Resyncs)
	}
}

// A sender a little faster than our clock fills the buffer; it drains back toward its
// target instead of keeping the extra delay.
func TestJitterBufferDrainsALastingExcess(t *testing.T) {
	j := newJitterBuffer(2, 10)
	buf := make([]byte, FrameBytes)
	seq := uint16(0)
	for range 7 {
		j.push(1, seq, PCMU, []byte{0})
		seq++
	}
	for range 3 * drainAfter {
		j.push(1, seq, PCMU, []byte{0})
		seq++
		j.pop(buf)
	}
	if j.count > 2+2 || j.stats.Drained == 0 {
		t.Fatalf("count %d after draining %d", j.count, j.stats.Drained)
	}
}

// Concealment at the participant: a lost frame is the last one at half level, then a
// quarter, then silence.
func TestParticipantConcealsLoss(t *testing.T) {
	m := New(Config{JitterTarget: FrameDuration})
	src, _ := m.Add(ParticipantConfig{Codec: PCMU, Sink: &capture{}, IgnorePT: -1})
	ear := &capture{}
	m.Add(ParticipantConfig{Codec: PCMU, Sink: ear, IgnorePT: -1})
	tn := &tone{codec: PCMU, freq: 500, amp: 8000, ssrc: 1}
	src.Push(tn.next())
	m.Tick()
	for range 4 {
		m.Tick() // nothing arrives: concealed twice, then silence
	}
	pk := ear.packets(t)
	rms := func(k int) float64 {
		var s float64
		for _, x := range samples(t, pk[k:k+1]) {
			s += float64(x) * float64(x)
		}
		return s
	}
	full, half, quarter, none := rms(0), rms(1), rms(2), rms(3)
	if full == 0 || half > full/3 || half < full/6 || quarter > half/3 || quarter < half/6 || none != 0 {
		t.Fatalf("energy of the played, concealed and silent frames: %.0f %.0f %.0f %.0f", full, half, quarter, none)
	}
}
