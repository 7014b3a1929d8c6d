package mediagw

import (
	"encoding/binary"

	"github.com/pion/rtp"
)

// minRTPHeader is the fixed RTP header size (RFC 3550 5.1).
const minRTPHeader = 12

// dropReason indexes the per-reason drop counters; dropNone means "forward".
type dropReason uint8

const (
	dropNone dropReason = iota
	dropTruncated
	dropBadVersion
	dropUnknownPT
	dropOversized
	dropForeignSource
	dropNotBinary
	dropNoRemote
	dropNotAttached
	dropQueueFull
	dropHeld
	dropDTMF
	dropSendError
	dropLatchWindow
	dropGated
	numDropReasons
)

// dropNames are the wire names of the drop reasons (index = dropReason).
var dropNames = [numDropReasons]string{
	"", DropTruncated, DropBadVersion, DropUnknownPT, DropOversized, DropForeignSource,
	DropNotBinary, DropNoRemote, DropNotAttached, DropQueueFull, DropHeld, DropDTMF, DropSendError,
	DropLatchWindow, DropGated,
}

// isRTCP tells RTP and RTCP apart as RFC 5761 section 4 does: RTCP packet types 192-223
// occupy the second byte where RTP would have marker + payload type 64-95, which is why
// those payload types are never negotiated. buf must hold at least 2 bytes.
func isRTCP(buf []byte) bool {
	return buf[1] >= 192 && buf[1] <= 223
}

// ptSet is the negotiated payload types with their clock rates, indexed by payload type.
type ptSet struct {
	ok    [128]bool
	clock [128]uint32
	// event is the telephone-event payload type (eventOK false: none negotiated).
	event   uint8
	eventOK bool
}

// rtpInfo is what the relay needs from a valid RTP header.
type rtpInfo struct {
	pt     uint8
	seq    uint16
	ts     uint32
	ssrc   uint32
	marker bool
}

// checkRTP validates one RTP packet with pion/rtp: version 2, header (CSRCs and
// extension) and padding within the packet, payload type negotiated. hdr is a scratch
// header reused by the caller so the hot path does not allocate.
func checkRTP(buf []byte, pts *ptSet, hdr *rtp.Header) (rtpInfo, dropReason) {
	if len(buf) < minRTPHeader {
		return rtpInfo{}, dropTruncated
	}
	if buf[0]>>6 != 2 {
		return rtpInfo{}, dropBadVersion
	}
	n, err := hdr.Unmarshal(buf)
	if err != nil {
		return rtpInfo{}, dropTruncated
	}
	if hdr.Padding {
		// RFC 3550 5.1: the last octet counts the padding, itself included.
		pad := int(buf[len(buf)-1])
		if pad == 0 || n+pad > len(buf) {
			return rtpInfo{}, dropTruncated
		}
	}
	if !pts.ok[hdr.PayloadType] {
		return rtpInfo{}, dropUnknownPT
	}
	return rtpInfo{pt: hdr.PayloadType, seq: hdr.SequenceNumber, ts: hdr.Timestamp, ssrc: hdr.SSRC, marker: hdr.Marker}, dropNone
}

// checkRTCP validates a (compound) RTCP packet as RFC 3550 A.2 does, without requiring
// SR/RR first (RFC 5506 reduced-size RTCP is legal): every packet version 2 with a type in
// the RFC 5761 RTCP range, lengths that add up exactly to the datagram.
func checkRTCP(buf []byte) dropReason {
	if len(buf) < 8 {
		return dropTruncated
	}
	for off := 0; off < len(buf); {
		if len(buf)-off < 4 {
			return dropTruncated
		}
		if buf[off]>>6 != 2 {
			return dropBadVersion
		}
		if pt := buf[off+1]; pt < 192 || pt > 223 {
			return dropUnknownPT
		}
		l := (int(binary.BigEndian.Uint16(buf[off+2:])) + 1) * 4
		if off+l > len(buf) {
			return dropTruncated
		}
		off += l
	}
	return dropNone
}

// reportBlock is the first RTCP report block about ssrc (0: any) found in a valid
// compound packet: fraction lost (1/256), cumulative lost, interarrival jitter.
func reportBlock(buf []byte, ssrc uint32) (fraction uint8, cumLost int32, jitter uint32, ok bool) {
	for off := 0; off+8 <= len(buf); {
		l := (int(binary.BigEndian.Uint16(buf[off+2:])) + 1) * 4
		if off+l > len(buf) {
			return 0, 0, 0, false
		}
		rc := int(buf[off] & 0x1f)
		first := -1
		switch buf[off+1] {
		case 200: // SR: 8 header + 20 sender info
			first = off + 28
		case 201: // RR
			first = off + 8
		}
		for i := 0; first >= 0 && i < rc; i++ {
			b := first + 24*i
			if b+24 > off+l {
				break
			}
			if ssrc != 0 && binary.BigEndian.Uint32(buf[b:]) != ssrc {
				continue
			}
			cl := int32(binary.BigEndian.Uint32(buf[b+4:]) & 0xffffff)
			if cl&0x800000 != 0 {
				cl -= 1 << 24 // 24-bit two's complement (RFC 3550 6.4.1)
			}
			return buf[b+4], cl, binary.BigEndian.Uint32(buf[b+12:]), true
		}
		off += l
	}
	return 0, 0, 0, false
}
