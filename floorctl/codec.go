package floorctl

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// RTCP APP framing (RFC 3550 section 6.7, TS 24.380 section 8.1.2).
const (
	headerLen   = 12  // V/P/subtype, PT, length, SSRC, name
	ptApp       = 204 // RTCP APP
	rtcpVersion = 2
	maxText     = 255 // an 8-bit field length
)

// appName is the APP name of floor control messages (TS 24.380 section 8.2.2).
const appName = "MCPT"

// pad4 rounds n up to a multiple of 4: every field ends on a 32-bit boundary (§8.2.3.1).
func pad4(n int) int { return (n + 3) &^ 3 }

// fieldSize is the size of field f of m on the wire, padding included.
func (m *Message) fieldSize(f Field) int {
	switch f {
	case FieldRejectCause:
		return pad4(4 + len(m.RejectPhrase))
	case FieldGrantedPartyID:
		return pad4(2 + len(m.GrantedPartyID))
	case FieldUserID:
		return pad4(2 + len(m.UserID))
	case FieldQueuedUserID:
		return pad4(2 + len(m.QueuedUserID))
	case FieldSSRC:
		return 8 // SSRC plus 16 spare bits
	}
	return 4 // ID, length 2, 16-bit value
}

// MarshalSize returns the size of the marshalled message in bytes. It is meaningful only
// for a message Marshal accepts.
func (m *Message) MarshalSize() int {
	n := headerLen
	if !m.Subtype.known() {
		return n
	}
	for _, f := range layouts[m.Subtype].order {
		if m.Has(f) {
			n += m.fieldSize(f)
		}
	}
	return n
}

// validate checks what Marshal would otherwise write wrongly.
func (m *Message) validate() error {
	if !m.Subtype.known() {
		return fmt.Errorf("%w: %05b", ErrUnknownSubtype, uint8(m.Subtype))
	}
	if m.AckRequired && !m.Subtype.ackable() {
		return fmt.Errorf("%w: %v cannot ask for an acknowledgement", ErrUnknownSubtype, m.Subtype)
	}
	l := &layouts[m.Subtype]
	if extra := m.Fields &^ l.allowed; extra != 0 {
		return fmt.Errorf("%w: %v with fields %032b", ErrFieldNotAllowed, m.Subtype, uint32(extra))
	}
	if missing := l.mandatory &^ m.Fields; missing != 0 {
		return fmt.Errorf("%w: %v without fields %032b", ErrMissingField, m.Subtype, uint32(missing))
	}
	for _, t := range [...]struct {
		f   Field
		n   int
		max int
	}{
		{FieldRejectCause, len(m.RejectPhrase), maxText - 2},
		{FieldGrantedPartyID, len(m.GrantedPartyID), maxText},
		{FieldUserID, len(m.UserID), maxText},
		{FieldQueuedUserID, len(m.QueuedUserID), maxText},
	} {
		if t.n > t.max && m.Has(t.f) {
			return fmt.Errorf("%w: field %d is %d bytes, at most %d", ErrFieldTooLong, t.f, t.n, t.max)
		}
	}
	if m.Has(FieldMessageType) && !m.MessageType.known() {
		return fmt.Errorf("%w: Message Type %05b", ErrFieldValue, uint8(m.MessageType))
	}
	return nil
}

// Marshal returns the message as one RTCP APP packet.
func (m *Message) Marshal() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	buf := make([]byte, m.MarshalSize())
	n, err := m.MarshalTo(buf)
	return buf[:n], err
}

// MarshalTo writes the message as one RTCP APP packet into buf and returns the bytes
// written. It does not allocate.
func (m *Message) MarshalTo(buf []byte) (int, error) {
	if err := m.validate(); err != nil {
		return 0, err
	}
	size := m.MarshalSize()
	if len(buf) < size {
		return 0, fmt.Errorf("%w: %d bytes for a %d-byte %v", ErrShortBuffer, len(buf), size, m.Subtype)
	}
	st := byte(m.Subtype)
	if m.AckRequired {
		st |= ackBit
	}
	buf[0] = rtcpVersion<<6 | st // P = 0 (§8.1.2)
	buf[1] = ptApp
	binary.BigEndian.PutUint16(buf[2:], uint16(size/4-1))
	binary.BigEndian.PutUint32(buf[4:], m.SSRC)
	copy(buf[8:12], appName)
	off := headerLen
	for _, f := range layouts[m.Subtype].order {
		if m.Has(f) {
			off += m.putField(buf[off:], f)
		}
	}
	return off, nil
}

// putField writes field f with its padding (zeros) and returns its size.
func (m *Message) putField(b []byte, f Field) int {
	size := m.fieldSize(f)
	clear(b[:size])
	b[0] = byte(f)
	b[1] = 2
	switch f {
	case FieldFloorPriority:
		b[2] = m.FloorPriority // then 8 spare bits
	case FieldDuration:
		binary.BigEndian.PutUint16(b[2:], m.Duration)
	case FieldRejectCause:
		b[1] = byte(2 + len(m.RejectPhrase))
		binary.BigEndian.PutUint16(b[2:], m.RejectCause)
		copy(b[4:], m.RejectPhrase)
	case FieldQueueInfo:
		b[2], b[3] = m.QueuePosition, m.QueuePriority
	case FieldGrantedPartyID:
		putText(b, m.GrantedPartyID)
	case FieldPermissionToRequest:
		if m.PermissionToRequest {
			b[3] = 1
		}
	case FieldUserID:
		putText(b, m.UserID)
	case FieldQueueSize:
		binary.BigEndian.PutUint16(b[2:], m.QueueSize)
	case FieldSequenceNumber:
		binary.BigEndian.PutUint16(b[2:], m.SequenceNumber)
	case FieldQueuedUserID:
		putText(b, m.QueuedUserID)
	case FieldSource:
		binary.BigEndian.PutUint16(b[2:], uint16(m.Source))
	case FieldMessageType:
		b[2] = byte(m.MessageType) // then 8 spare bits
	case FieldFloorIndicator:
		binary.BigEndian.PutUint16(b[2:], uint16(m.FloorIndicator))
	case FieldSSRC:
		b[1] = 6
		binary.BigEndian.PutUint32(b[2:], m.GrantedSSRC) // then 16 spare bits
	}
	return size
}

func putText(b, text []byte) {
	b[1] = byte(len(text))
	copy(b[2:], text)
}

// Unmarshal decodes exactly one floor control message (one RTCP APP packet named MCPT)
// into m, overwriting it. Text values alias buf. Fields a message does not define, field
// IDs it does not know and Track Info are skipped; a repeated field keeps its first value.
// It does not allocate on success. Use a Scanner for a datagram holding several packets.
func (m *Message) Unmarshal(buf []byte) error {
	if len(buf) < headerLen {
		return fmt.Errorf("%w: %d bytes, the APP header alone is %d", ErrTruncated, len(buf), headerLen)
	}
	if v := buf[0] >> 6; v != rtcpVersion {
		return fmt.Errorf("%w: %d", ErrBadVersion, v)
	}
	if buf[1] != ptApp {
		return fmt.Errorf("%w: packet type %d", ErrNotApp, buf[1])
	}
	size := (int(binary.BigEndian.Uint16(buf[2:])) + 1) * 4
	switch {
	case size < headerLen:
		return fmt.Errorf("%w: length field says %d bytes, less than the %d-byte APP header", ErrLength, size, headerLen)
	case size > len(buf):
		return fmt.Errorf("%w: length field says %d bytes, %d present", ErrTruncated, size, len(buf))
	case size < len(buf):
		return fmt.Errorf("%w: %d bytes after a %d-byte message", ErrLength, len(buf)-size, size)
	}
	if string(buf[8:12]) != appName {
		return fmt.Errorf("%w: %q", ErrNotMCPT, buf[8:12])
	}
	body := buf[headerLen:size]
	if buf[0]&0x20 != 0 { // P: RFC 3550 padding, last octet counts it
		if len(body) == 0 {
			return fmt.Errorf("%w: padding bit set on an empty body", ErrBadPadding)
		}
		pad := int(body[len(body)-1])
		if pad == 0 || pad > len(body) {
			return fmt.Errorf("%w: %d padding bytes in a %d-byte body", ErrBadPadding, pad, len(body))
		}
		body = body[:len(body)-pad]
	}
	st := buf[0] & 0x1f
	sub, ack := Subtype(st&^ackBit), st&ackBit != 0
	if !sub.known() || (ack && !sub.ackable()) {
		return fmt.Errorf("%w: %05b", ErrUnknownSubtype, st)
	}
	*m = Message{Subtype: sub, AckRequired: ack, SSRC: binary.BigEndian.Uint32(buf[4:])}
	if err := m.unmarshalFields(body); err != nil {
		return err
	}
	if missing := layouts[sub].mandatory &^ m.Fields; missing != 0 {
		return fmt.Errorf("%w: %v without fields %032b", ErrMissingField, sub, uint32(missing))
	}
	return nil
}

// unmarshalFields walks the floor control specific fields (§8.2.3.1): an 8-bit ID, a
// length of one octet (IDs below 192) or two (IDs from 192), the value, zero padding to
// 32 bits.
func (m *Message) unmarshalFields(body []byte) error {
	allowed := layouts[m.Subtype].allowed
	for off := 0; off < len(body); {
		rest := body[off:]
		id := Field(rest[0])
		lenLen := 1
		if id >= 192 {
			lenLen = 2
		}
		if len(rest) < 1+lenLen {
			return fmt.Errorf("%w: field %d at offset %d has no length", ErrFieldTruncated, id, headerLen+off)
		}
		l := int(rest[1])
		if lenLen == 2 {
			l = int(binary.BigEndian.Uint16(rest[1:]))
		}
		end := 1 + lenLen + l
		if pad4(end) > len(rest) {
			return fmt.Errorf("%w: field %d at offset %d needs %d bytes, %d left", ErrFieldTruncated, id, headerLen+off, pad4(end), len(rest))
		}
		if allowed.Has(id) && !m.Has(id) {
			if err := m.decodeField(id, rest[1+lenLen:end]); err != nil {
				return fmt.Errorf("%w (field at offset %d)", err, headerLen+off)
			}
			m.Fields = m.Fields.With(id)
		}
		off += pad4(end)
	}
	return nil
}

// decodeField stores one field value of a known, allowed field.
func (m *Message) decodeField(id Field, v []byte) error {
	want := 2
	switch id {
	case FieldRejectCause, FieldGrantedPartyID, FieldUserID, FieldQueuedUserID:
		want = -1
	case FieldSSRC:
		want = 6
	}
	if want >= 0 && len(v) != want {
		return fmt.Errorf("%w: field %d has length %d, want %d", ErrFieldLength, id, len(v), want)
	}
	var err error
	switch id {
	case FieldFloorPriority:
		m.FloorPriority = v[0]
	case FieldDuration:
		m.Duration = binary.BigEndian.Uint16(v)
	case FieldRejectCause:
		if len(v) < 2 {
			return fmt.Errorf("%w: Reject Cause has length %d, want at least 2", ErrFieldLength, len(v))
		}
		m.RejectCause = binary.BigEndian.Uint16(v)
		m.RejectPhrase, err = text(id, v[2:])
	case FieldQueueInfo:
		m.QueuePosition, m.QueuePriority = v[0], v[1]
	case FieldGrantedPartyID:
		m.GrantedPartyID, err = text(id, v)
	case FieldPermissionToRequest:
		switch binary.BigEndian.Uint16(v) {
		case 0:
		case 1:
			m.PermissionToRequest = true
		default:
			return fmt.Errorf("%w: Permission to Request the Floor %d", ErrFieldValue, binary.BigEndian.Uint16(v))
		}
	case FieldUserID:
		m.UserID, err = text(id, v)
	case FieldQueueSize:
		m.QueueSize = binary.BigEndian.Uint16(v)
	case FieldSequenceNumber:
		m.SequenceNumber = binary.BigEndian.Uint16(v)
	case FieldQueuedUserID:
		m.QueuedUserID, err = text(id, v)
	case FieldSource:
		m.Source = Source(binary.BigEndian.Uint16(v))
	case FieldMessageType:
		// Implementations differ on the acknowledgement bit in this value (NIST psc-ns3
		// clears it, the MCOP client keeps it): accept both.
		mt := Subtype(v[0] &^ ackBit)
		if v[0] >= 32 || !mt.known() {
			return fmt.Errorf("%w: Message Type %d", ErrFieldValue, v[0])
		}
		m.MessageType = mt
	case FieldFloorIndicator:
		m.FloorIndicator = Indicator(binary.BigEndian.Uint16(v))
	case FieldSSRC:
		m.GrantedSSRC = binary.BigEndian.Uint32(v)
	}
	return err
}

// text checks a text value: UTF-8 (MCPTT IDs are URIs) and no NUL inside; trailing NULs,
// which C implementations sometimes count in the length, are dropped.
func text(id Field, v []byte) ([]byte, error) {
	v = bytes.TrimRight(v, "\x00")
	if bytes.IndexByte(v, 0) >= 0 || !utf8.Valid(v) {
		return nil, fmt.Errorf("%w: field %d is not NUL-free UTF-8", ErrFieldValue, id)
	}
	return v, nil
}
