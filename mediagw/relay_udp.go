package mediagw

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

// readUDP is the reader of one of the termination's sockets (rtcpSock: the RTCP port).
// It owns its buffer and scratch header, so the path allocates nothing per packet.
func (t *termination) readUDP(conn *net.UDPConn, rtcpSock bool) {
	defer t.wg.Done()
	buf := make([]byte, t.g.cfg.MaxPacket+1)
	var hdr rtp.Header
	for {
		n, src, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-t.done:
				return
			default:
				continue
			}
		}
		t.fromUDP(buf[:n], src, rtcpSock, &hdr)
	}
}

// fromUDP checks one datagram from the far end and queues it toward the browser.
func (t *termination) fromUDP(pkt []byte, src netip.AddrPort, rtcpSock bool, hdr *rtp.Header) {
	a, ok := t.admit(pkt, rtcpSock, hdr)
	if !ok {
		return
	}
	p := a.peer
	slot, want := &p.lock.rtp, p.rtp
	if rtcpSock {
		slot, want = &p.lock.rtcp, p.rtcp
	}
	if why := t.checkSource(p.lock, slot, want, netip.AddrPortFrom(src.Addr().Unmap(), src.Port())); why != dropNone {
		t.drop(why)
		return
	}
	now := time.Now().UnixNano()
	t.lastPacket.Store(now)
	if a.rtcp {
		t.noteReport(pkt, p)
	} else {
		t.c.fromUDP.update(a.info, p.pts.clock[a.info.pt], now)
	}
	w := t.ws.Load()
	if w == nil {
		t.drop(dropNotAttached)
		return
	}
	if !w.enqueue(pkt) {
		t.drop(dropQueueFull)
		return
	}
	t.relayed(&t.c.udpToWS, &t.g.m.udpToWS, a.rtcp, len(pkt))
}

// noteReport keeps the far end's report about the stream we send it (the browser's).
func (t *termination) noteReport(pkt []byte, p *peerState) {
	ssrc := t.out.currentSSRC()
	frac, cum, jit, ok := reportBlock(pkt, ssrc)
	if !ok {
		return
	}
	clock := uint32(8000)
	if pt, ok := t.out.currentPT(); ok && p.pts.clock[pt] > 0 {
		clock = p.pts.clock[pt]
	}
	r := &RemoteReport{FractionLost: float64(frac) / 256, CumulativeLost: cum,
		JitterMS: float64(jit) * 1000 / float64(clock)}
	t.c.reportMu.Lock()
	t.c.report = r
	t.c.reportMu.Unlock()
}

// sendUDP sends one packet toward the far end: RTP (and muxed RTCP) from the RTP port
// to the latched or negotiated RTP address, RTCP from the RTCP port to its address.
func (t *termination) sendUDP(pkt []byte, p *peerState, rtcp bool) dropReason {
	conn, latch, dest := t.rtpConn, &p.lock.rtp, p.rtp
	if rtcp && !p.mux {
		conn, latch, dest = t.rtcpConn, &p.lock.rtcp, p.rtcp
	}
	if l := latch.Load(); l != nil {
		dest = *l
	}
	if dest.Addr().IsUnspecified() {
		// c=0.0.0.0 is the legacy way to say hold (RFC 3264 8.4): nowhere to send.
		return dropHeld
	}
	if _, err := conn.WriteToUDPAddrPort(pkt, dest); err != nil {
		return dropSendError
	}
	return dropNone
}
