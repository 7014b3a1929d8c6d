package sdp

import "errors"

// Sentinel errors of the package. Callers match them with errors.Is; every error of Parse
// and of the negotiation wraps one of them with the detail.
var (
	// ErrMalformed reports an SDP body that cannot be parsed or has no usable audio stream.
	ErrMalformed = errors.New("bad SDP")
	// ErrNoCodec reports an SDP offer or answer without any codec the gateway supports.
	ErrNoCodec = errors.New("no common codec")
)
