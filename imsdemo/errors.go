package imsdemo

import "errors"

// Sentinel errors of the conference server.
var (
	// ErrConfig is a configuration the server cannot run with.
	ErrConfig = errors.New("invalid configuration")
	// ErrBadSDP is a body that is not usable SDP.
	ErrBadSDP = errors.New("bad SDP")
	// ErrNotAcceptable is an offer without an audio stream of PCMU or PCMA over RTP/AVP.
	ErrNotAcceptable = errors.New("no acceptable audio stream")
	// ErrNoPorts means every RTP port of the configured range is in use.
	ErrNoPorts = errors.New("no free RTP port")
	// ErrTooManyRooms means the server hosts its maximum of rooms.
	ErrTooManyRooms = errors.New("too many rooms")
)
