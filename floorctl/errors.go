package floorctl

import "errors"

// Sentinel errors. Every error of the package wraps one of them with the detail (offsets,
// lengths, field IDs), so callers branch with errors.Is and logs still say what was wrong.
var (
	// ErrShortBuffer is a buffer given to MarshalTo that cannot hold the message.
	ErrShortBuffer = errors.New("buffer too short")

	// ErrTruncated is a packet shorter than its RTCP header or than its length field says.
	ErrTruncated = errors.New("truncated packet")
	// ErrBadVersion is an RTCP version other than 2 (RFC 3550 section 6.1).
	ErrBadVersion = errors.New("bad RTCP version")
	// ErrNotApp is an RTCP packet whose type is not APP (204) where a floor control
	// message was expected.
	ErrNotApp = errors.New("not an RTCP APP packet")
	// ErrNotMCPT is an APP packet whose name is not "MCPT" (TS 24.380 section 8.1.2):
	// pre-established session call control ("MCPC") or MBMS subchannel control ("MCMC").
	ErrNotMCPT = errors.New("APP name is not MCPT")
	// ErrLength is a length field that disagrees with the bytes at hand: an APP packet
	// shorter than its 12-byte header, or a single message followed by extra bytes.
	ErrLength = errors.New("bad length")
	// ErrBadPadding is an RTCP padding count of zero or larger than the packet body.
	ErrBadPadding = errors.New("bad RTCP padding")
	// ErrUnknownSubtype is a subtype TS 24.380 Table 8.2.2-1 does not define for the
	// messages this package implements, or an acknowledgement bit on a message that
	// cannot ask for one.
	ErrUnknownSubtype = errors.New("unknown floor control subtype")

	// ErrFieldTruncated is a field whose ID, length or value runs past the packet.
	ErrFieldTruncated = errors.New("truncated field")
	// ErrFieldLength is a fixed-size field (TS 24.380 section 8.2.3) with another length.
	ErrFieldLength = errors.New("bad field length")
	// ErrFieldValue is a field value the specification does not define (for example a
	// Permission to Request the Floor other than 0 or 1).
	ErrFieldValue = errors.New("bad field value")
	// ErrMissingField is a message without a field its subtype requires (for example a
	// Floor Deny without Reject Cause).
	ErrMissingField = errors.New("missing mandatory field")
	// ErrFieldNotAllowed is a field set on a message whose subtype does not carry it;
	// only Marshal reports it (Unmarshal skips such fields like unknown ones).
	ErrFieldNotAllowed = errors.New("field not allowed in this message")
	// ErrFieldTooLong is a text value longer than the 255 bytes an 8-bit length holds.
	ErrFieldTooLong = errors.New("field value too long")

	// ErrBadSDP is an SDP body or MCPTT fmtp value that cannot be parsed.
	ErrBadSDP = errors.New("bad MCPTT SDP")
	// ErrNoFloorControl is an SDP body without an "m=application <port> udp MCPTT" line.
	ErrNoFloorControl = errors.New("no MCPTT floor control media line")

	// ErrUnknownParticipant is a floor server input naming a participant that never
	// joined or already left.
	ErrUnknownParticipant = errors.New("unknown floor participant")
	// ErrDuplicateParticipant is a Join with an ID already in the talk group.
	ErrDuplicateParticipant = errors.New("participant already joined")
	// ErrBadConfig is a Config or constructor argument out of range.
	ErrBadConfig = errors.New("bad floor control configuration")
)
