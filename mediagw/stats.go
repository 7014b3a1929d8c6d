package mediagw

import (
	"sync"
	"sync/atomic"
)

// RFC 3550 appendix A.1 constants: a jump of up to maxDropout is loss, a step back of up
// to maxMisorder is reordering; anything else restarts the sequence (a new stream).
const (
	maxDropout  = 3000
	maxMisorder = 100
)

// recvStats are RFC 3550 receive statistics of the main (last seen) SSRC of one
// direction. update runs on the direction's single reader goroutine; snapshot may run
// concurrently, hence the mutex (uncontended on the packet path).
type recvStats struct {
	mu       sync.Mutex
	started  bool
	ssrc     uint32
	maxSeq   uint16
	cycles   uint32 // count of sequence wraps << 16
	baseSeq  uint32
	received uint64
	// transit and jitter are in timestamp units (A.8); jitter is kept as a float rather
	// than the spec's scaled integer, the result is the same estimator.
	transit    int64
	haveTransi bool
	jitter     float64
	clock      uint32
}

// update accounts one valid RTP packet that arrived at arrival (ns, monotonic enough).
func (s *recvStats) update(in rtpInfo, clock uint32, arrival int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || in.ssrc != s.ssrc {
		s.reset(in)
	} else {
		udelta := in.seq - s.maxSeq
		switch {
		case udelta < maxDropout:
			if in.seq < s.maxSeq {
				s.cycles += 1 << 16
			}
			s.maxSeq = in.seq
		case udelta <= 65535-maxMisorder:
			// A very large jump: the sender restarted its sequence. Start over.
			s.reset(in)
		default:
			// duplicate or reordered: counted as received, max unchanged
		}
	}
	s.received++
	if clock == 0 {
		return
	}
	if clock != s.clock {
		s.clock, s.haveTransi, s.jitter = clock, false, 0
	}
	arrivalTS := int64(float64(arrival) * float64(clock) / 1e9)
	transit := arrivalTS - int64(in.ts)
	if s.haveTransi {
		d := transit - s.transit
		if d < 0 {
			d = -d
		}
		// Timestamps wrap at 2^32; a difference that large is a wrap, not jitter.
		if d < 1<<30 {
			s.jitter += (float64(d) - s.jitter) / 16
		}
	}
	s.transit, s.haveTransi = transit, true
}

func (s *recvStats) reset(in rtpInfo) {
	s.started = true
	s.ssrc = in.ssrc
	s.maxSeq = in.seq
	s.baseSeq = uint32(in.seq)
	s.cycles = 0
	s.received = 0
	s.haveTransi = false
	s.jitter = 0
}

// snapshot returns the statistics, nil before the first packet.
func (s *recvStats) snapshot() *ReceiveStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		return nil
	}
	expected := uint64(s.cycles+uint32(s.maxSeq)) - uint64(s.baseSeq) + 1
	rs := &ReceiveStats{SSRC: s.ssrc, Received: s.received, Expected: expected,
		Lost: int64(expected) - int64(s.received)}
	if s.clock > 0 {
		rs.JitterMS = s.jitter * 1000 / float64(s.clock)
	}
	return rs
}

// flowCounters count relayed packets of one direction.
type flowCounters struct {
	rtpPackets, rtpBytes, rtcpPackets, rtcpBytes atomic.Uint64
}

func (f *flowCounters) snapshot() Flow {
	return Flow{RTPPackets: f.rtpPackets.Load(), RTPBytes: f.rtpBytes.Load(),
		RTCPPackets: f.rtcpPackets.Load(), RTCPBytes: f.rtcpBytes.Load()}
}

// counters are one termination's counters, updated lock-free on the packet paths.
type counters struct {
	wsToUDP, udpToWS flowCounters
	drops            [numDropReasons]atomic.Uint64
	dtmf             atomic.Uint64
	fromUDP, fromWS  recvStats

	reportMu sync.Mutex
	report   *RemoteReport
}

func (c *counters) snapshot() Counters {
	out := Counters{WSToUDP: c.wsToUDP.snapshot(), UDPToWS: c.udpToWS.snapshot(),
		Drops: map[string]uint64{}, DTMFPackets: c.dtmf.Load(),
		FromUDP: c.fromUDP.snapshot(), FromWS: c.fromWS.snapshot()}
	for i := dropReason(1); i < numDropReasons; i++ {
		if n := c.drops[i].Load(); n > 0 {
			out.Drops[dropNames[i]] = n
		}
	}
	c.reportMu.Lock()
	if c.report != nil {
		r := *c.report
		out.RemoteReport = &r
	}
	c.reportMu.Unlock()
	return out
}
