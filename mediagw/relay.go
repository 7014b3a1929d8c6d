package mediagw

import (
	"github.com/pion/rtp"
)

// admitted is what the admission checks learned about a packet both relay directions
// accept: the far end it was checked against, its kind and (RTP) its header fields.
type admitted struct {
	peer *peerState
	rtcp bool
	info rtpInfo // RTP only
}

// admit makes the checks both relay directions share, in this order: a far end is known,
// the packet fits MaxPacket, it has the two bytes that tell RTP from RTCP, and it is
// well-formed for its kind (RTP with a negotiated payload type). rtcpSock says the packet
// arrived on the RTCP port, which makes it RTCP whatever its second byte. A refused
// packet is counted as a drop here; false means the caller stops. The result is a value
// and hdr the caller's scratch header, so admission allocates nothing.
func (t *termination) admit(pkt []byte, rtcpSock bool, hdr *rtp.Header) (admitted, bool) {
	p := t.peer.Load()
	var why dropReason
	a := admitted{peer: p}
	switch {
	case p == nil:
		why = dropNoRemote
	case len(pkt) > t.g.cfg.MaxPacket:
		why = dropOversized
	case len(pkt) < 2:
		why = dropTruncated
	case rtcpSock || isRTCP(pkt):
		a.rtcp = true
		why = checkRTCP(pkt)
	default:
		a.info, why = checkRTP(pkt, &p.pts, hdr)
	}
	if why != dropNone {
		t.drop(why)
		return admitted{}, false
	}
	return a, true
}

// relayed counts one packet of n bytes relayed in one direction: f is the termination's
// counters of that direction, m the gateway-wide ones.
func (t *termination) relayed(f *flowCounters, m *flowMetrics, rtcp bool, n int) {
	if rtcp {
		f.rtcpPackets.Add(1)
		f.rtcpBytes.Add(uint64(n))
		m.rtcpPackets.Inc()
		m.rtcpBytes.Add(float64(n))
		return
	}
	f.rtpPackets.Add(1)
	f.rtpBytes.Add(uint64(n))
	m.rtpPackets.Inc()
	m.rtpBytes.Add(float64(n))
}

// drop counts one packet dropped for reason r.
func (t *termination) drop(r dropReason) {
	t.c.drops[r].Add(1)
	t.g.m.dropByReason[r].Inc()
}
