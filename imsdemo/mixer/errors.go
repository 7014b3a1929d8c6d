package mixer

import "errors"

// Sentinel errors. Push returns them unwrapped: it runs once per packet, and wrapping
// would allocate for every bad packet a peer (or an attacker) sends.
var (
	// ErrBadRTP is a packet that is not RTP version 2 or is cut short.
	ErrBadRTP = errors.New("not an RTP packet")
	// ErrPayloadType is an RTP packet of a payload type that is neither G.711 nor one
	// the participant said to ignore (telephone-event, comfort noise).
	ErrPayloadType = errors.New("unexpected RTP payload type")
	// ErrFrameSize is an audio payload that is empty or longer than one 20 ms frame.
	ErrFrameSize = errors.New("audio payload is not a frame of at most 20 ms")
	// ErrFull is returned by Add when the room has its maximum of participants.
	ErrFull = errors.New("room is full")
	// ErrNoSink is returned by Add for a participant without a Sink.
	ErrNoSink = errors.New("participant has no sink")
)
