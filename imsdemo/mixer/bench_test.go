package mixer

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// benchLoad is rooms × size participants, each with a ready 20 ms packet per tick.
type benchLoad struct {
	mixers []*Mixer
	parts  []*Participant
	pkts   [][]byte
	seq    uint16
}

// newBenchLoad builds the rooms; talkers participants per room send a tone, the others
// send silence (a conference where a few speak); the codecs alternate.
func newBenchLoad(rooms, size, talkers int, sink func(i int) Sink) *benchLoad {
	l := &benchLoad{}
	for r := range rooms {
		m := New(Config{MaxParticipants: size})
		l.mixers = append(l.mixers, m)
		for k := range size {
			i := r*size + k
			c := Codec(i % 2)
			p, err := m.Add(ParticipantConfig{Codec: c, SSRC: uint32(i), IgnorePT: 101, Sink: sink(i)})
			if err != nil {
				panic(err)
			}
			tn := &tone{codec: c, freq: 300 + 50*float64(k), amp: 4000, ssrc: uint32(i)}
			if k >= talkers {
				tn.amp = 0
			}
			l.parts = append(l.parts, p)
			l.pkts = append(l.pkts, tn.next())
		}
	}
	// Fill every jitter buffer to its target so the measured ticks all play audio.
	for range 3 {
		l.tick()
	}
	return l
}

// tick is one 20 ms of the whole load: a packet in per participant, a tick per room.
func (l *benchLoad) tick() {
	for i, p := range l.parts {
		pk := l.pkts[i]
		pk[2], pk[3] = byte(l.seq>>8), byte(l.seq)
		_ = p.Push(pk)
	}
	l.seq++
	for _, m := range l.mixers {
		m.Tick()
	}
}

// baseline is the least any G.711 media server does with the same packets: parse each,
// decode it and encode it again into an RTP packet for the same participant, with no
// jitter buffer and no mix.
type baseline struct {
	pkts [][]byte
	hdr  rtp.Header
	pcm  [FrameSamples]int32
	out  [rtpHeaderLen + FrameBytes]byte
	sink []Sink
}

func (b *baseline) tick() {
	for i, pk := range b.pkts {
		n, err := b.hdr.Unmarshal(pk)
		if err != nil {
			panic(err)
		}
		c, _ := codecOfPT(b.hdr.PayloadType)
		var s [FrameSamples]int16
		c.decode(&s, pk[n:])
		for k, x := range s {
			b.pcm[k] = int32(x)
		}
		h := rtp.Header{Version: 2, PayloadType: b.hdr.PayloadType, SequenceNumber: b.hdr.SequenceNumber,
			Timestamp: b.hdr.Timestamp, SSRC: b.hdr.SSRC}
		h.MarshalTo(b.out[:rtpHeaderLen])
		c.encode(b.out[rtpHeaderLen:], &b.pcm)
		b.sink[i].WriteRTP(b.out[:])
	}
}

// BenchmarkMixer measures one 20 ms tick of rooms × size participants (each op: a packet
// into every jitter buffer and a mix out to every participant) and reports, from the CPU
// time of the benchmark's thread, the CPU one participant costs, how many participants
// one core mixes in real time, and the same for the baseline (decode and re-encode
// only) measured in the same run. The udp cases add one sendto per packet, as the
// server does.
//
//	go test -run X -bench Mixer -benchtime 2000x ./imsdemo/mixer
func BenchmarkMixer(b *testing.B) {
	for _, sc := range []struct {
		rooms, size, talkers int
		udp                  bool
	}{
		{100, 5, 5, false},
		{100, 5, 1, false},
		{10, 50, 50, false},
		{1, 500, 3, false},
		{100, 5, 5, true},
	} {
		name := fmt.Sprintf("rooms=%d/size=%d/talkers=%d", sc.rooms, sc.size, sc.talkers)
		sink := func(int) Sink { return SinkFunc(func([]byte) {}) }
		if sc.udp {
			name += "/udp"
			sink = udpSinks(b)
		}
		b.Run(name, func(b *testing.B) {
			// The CPU time of this thread is what one core spends: on a shared machine
			// the wall time also counts the time other processes held the core.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			l := newBenchLoad(sc.rooms, sc.size, sc.talkers, sink)
			n := len(l.parts)
			b.ReportAllocs()
			b.ResetTimer()
			start := threadCPU(b)
			for b.Loop() {
				l.tick()
			}
			mix := threadCPU(b) - start
			b.StopTimer()
			base := &baseline{pkts: l.pkts}
			for i := range l.pkts {
				base.sink = append(base.sink, sink(i))
			}
			start = threadCPU(b)
			for range b.N {
				base.tick()
			}
			ref := threadCPU(b) - start
			report(b, "mix", mix, b.N, n)
			report(b, "base", ref, b.N, n)
			b.ReportMetric(float64(mix)/float64(ref), "x-base")
		})
	}
}

// threadCPU is the CPU time (user and system) of the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rusageThread is RUSAGE_THREAD of Linux: the calling thread only.
const rusageThread = 1

// report turns a duration for ticks ticks of n participants into per-participant figures:
// ns per participant and tick, percent of one core per participant (50 ticks a second),
// and the participants one core can serve in real time.
func report(b *testing.B, what string, d time.Duration, ticks, n int) {
	per := float64(d) / float64(ticks) / float64(n)
	b.ReportMetric(per, what+"-ns/part-tick")
	b.ReportMetric(per*50/1e9*100, what+"-%core/part")
	b.ReportMetric(float64(FrameDuration)/per, what+"-parts/core")
}

// udpSinks returns sinks that send over one loopback UDP socket to a reader that drains
// them, as the conference server does (one sendto per packet).
func udpSinks(b *testing.B) func(int) Sink {
	rx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	tx, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = rx.SetReadBuffer(4 << 20)
	b.Cleanup(func() { rx.Close(); tx.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	dst := netip.MustParseAddrPort(rx.LocalAddr().String())
	return func(int) Sink {
		return SinkFunc(func(pkt []byte) { _, _ = tx.WriteToUDPAddrPort(pkt, dst) })
	}
}
