package floorctl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Scanner walks the RTCP packets of one datagram and decodes the floor control messages
// among them. TS 24.380 section 8.1.1 sends each message as a lone APP packet, several of
// them possibly in one datagram, but a peer that follows RFC 3550 may still put one in a
// compound packet after an SR or RR: the scanner skips SR, RR, SDES, BYE, feedback and APP
// packets of other names. It does not allocate.
//
//	sc := floorctl.NewScanner(datagram)
//	for {
//		err := sc.Next(&msg)
//		if err == io.EOF {
//			break
//		}
//		if err != nil {
//			log(err) // this packet only; the scanner has moved past it
//			continue
//		}
//		handle(&msg)
//	}
type Scanner struct {
	buf []byte
}

// NewScanner returns a scanner over one datagram.
func NewScanner(datagram []byte) Scanner { return Scanner{buf: datagram} }

// Reset makes the scanner walk another datagram.
func (s *Scanner) Reset(datagram []byte) { s.buf = datagram }

// Next decodes the next floor control message into m. It returns io.EOF when no message
// is left. Any other error concerns one packet: a malformed floor control message (the
// scanner moves past it) or broken RTCP framing (the rest of the datagram cannot be
// delimited, so the scanner ends there and the next call returns io.EOF).
func (s *Scanner) Next(m *Message) error {
	for len(s.buf) > 0 {
		rest := s.buf
		if len(rest) < 4 {
			s.buf = nil
			return fmt.Errorf("%w: %d bytes left in the datagram, an RTCP header is 4", ErrTruncated, len(rest))
		}
		if v := rest[0] >> 6; v != rtcpVersion {
			s.buf = nil
			return fmt.Errorf("%w: %d in a compound packet", ErrBadVersion, v)
		}
		size := (int(binary.BigEndian.Uint16(rest[2:])) + 1) * 4
		if size > len(rest) {
			s.buf = nil
			return fmt.Errorf("%w: RTCP packet of %d bytes, %d left in the datagram", ErrTruncated, size, len(rest))
		}
		pkt := rest[:size]
		s.buf = rest[size:]
		if pkt[1] != ptApp {
			continue // SR, RR, SDES, BYE, RTPFB, PSFB, XR ...
		}
		if size < headerLen {
			return fmt.Errorf("%w: APP packet of %d bytes", ErrLength, size)
		}
		if string(pkt[8:12]) != appName {
			continue // another application's APP packet
		}
		return m.Unmarshal(pkt)
	}
	return io.EOF
}

// IsFloorControl reports whether b starts with an RTCP APP packet named MCPT: a cheap
// test to demultiplex floor control from RTP or other RTCP on a shared port.
func IsFloorControl(b []byte) bool {
	return len(b) >= headerLen && b[0]>>6 == rtcpVersion && b[1] == ptApp &&
		string(b[8:12]) == appName
}

// scan calls handle for every floor control message of a datagram. Packets that fail to
// decode reach no handler, so they change no state; their errors come back joined.
func scan(datagram []byte, handle func(*Message)) error {
	var (
		m    Message
		errs []error
	)
	for sc := NewScanner(datagram); ; {
		err := sc.Next(&m)
		if err == io.EOF {
			return errors.Join(errs...)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		handle(&m)
	}
}

// ReceiveDatagram handles every floor control message of a datagram from the server and
// returns what to send back. A malformed message is skipped, changes nothing and is
// reported in the error; the others are still handled.
func (p *Participant) ReceiveDatagram(datagram []byte) ([]Message, error) {
	var out []Message
	err := scan(datagram, func(m *Message) { out = append(out, p.Receive(m)...) })
	return out, err
}

// ReceiveDatagram handles every floor control message of a datagram from participant
// from. A malformed message is skipped, changes nothing and is reported in the error.
func (s *Server) ReceiveDatagram(from string, datagram []byte) ([]Outbound, error) {
	var (
		out  []Outbound
		errs []error
	)
	err := scan(datagram, func(m *Message) {
		o, err := s.Receive(from, m)
		out = append(out, o...)
		if err != nil {
			errs = append(errs, err)
		}
	})
	return out, errors.Join(append(errs, err)...)
}
