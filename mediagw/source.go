package mediagw

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Which UDP source a termination accepts from its far end: the defence against RTP bleed
// (an attacker who sprays the port range would otherwise capture a stream by sending the
// first packet, as plain symmetric-RTP latching lets it).
//
// The rule, per port (RTP and RTCP apart):
//   - A packet from the address and port the SDP named locks the port to that source:
//     from then on only it is accepted, and our packets keep going to it.
//   - A packet from any other source is accepted only when the SDP named an address the
//     gateway may not be able to reach directly (private, shared, link-local, unspecified:
//     a far end behind NAT), latching is on, and nothing came from the SDP's address
//     within LatchWindow of the remote being set. The first such packet latches the port
//     to its source once; our packets then go there instead.
//   - Everything else is dropped: foreign_source, or latch_window while the SDP's private
//     address still has time to speak first.
//
// Nothing re-latches until the remote address changes (a new remote or a modify with a
// new address): setPeer then starts a fresh sourceLock.

// sourceLock is what one remote address has learned about its sources. It belongs to a
// peerState and is shared by the snapshots that keep the same address (hold, payload
// types), so a reader that loaded an older snapshot latches the same lock: a modify that
// changes the address can never be undone by a packet judged against the old one.
type sourceLock struct {
	// rtp and rtcp are the accepted source of each port, nil until the first accepted
	// packet. Written once (compare-and-swap) and read on every packet.
	rtp, rtcp atomic.Pointer[netip.AddrPort]
	// mayLatch says another source than the SDP's may be latched at all: latching is on
	// and the SDP's address may be behind NAT. Immutable.
	mayLatch bool
	// latchAfter is when (unix ns) the SDP's address has had its chance: only then may
	// another source latch. Atomic so a test can end the window without waiting.
	latchAfter atomic.Int64
}

// newSourceLock starts the lock of a new remote address at now.
func newSourceLock(cfg *Config, sdp netip.Addr, now time.Time) *sourceLock {
	l := &sourceLock{mayLatch: !cfg.DisableLatching && mayBeBehindNAT(sdp)}
	l.latchAfter.Store(now.Add(cfg.LatchWindow).UnixNano())
	return l
}

// mayBeBehindNAT reports whether an SDP address may not be where the far end's packets
// come from: private (RFC 1918, RFC 4193), shared (RFC 6598), link-local, or unspecified.
// Loopback and global addresses are reachable as they are, so their far end must send
// from them.
func mayBeBehindNAT(a netip.Addr) bool {
	a = a.Unmap()
	// 100.64.0.0/10 is the shared space of carrier-grade NAT (RFC 6598): as unreachable
	// from outside as RFC 1918 space.
	cgnat := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, 0, 0}), 10)
	return a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsUnspecified() || cgnat.Contains(a)
}

// checkSource decides on a datagram from src arriving on one port whose accepted source
// is slot and whose SDP destination is want. Accepting the first packet allocates the
// latched address once; every later packet is a load and a compare.
func (t *termination) checkSource(l *sourceLock, slot *atomic.Pointer[netip.AddrPort], want, src netip.AddrPort) dropReason {
	if cur := slot.Load(); cur != nil {
		if *cur == src {
			return dropNone
		}
		return dropForeignSource
	}
	nat := src != want
	switch {
	case !nat:
	case !l.mayLatch:
		return dropForeignSource
	case time.Now().UnixNano() < l.latchAfter.Load():
		return dropLatchWindow
	}
	latched := src // a fresh variable, so only this first packet allocates
	if !slot.CompareAndSwap(nil, &latched) {
		if *slot.Load() == src {
			return dropNone
		}
		return dropForeignSource
	}
	if nat {
		t.log.Info("latched far end behind NAT", "source", src.String(), "negotiated", want.String())
	} else {
		t.log.Info("far end source confirmed", "source", src.String())
	}
	return dropNone
}
