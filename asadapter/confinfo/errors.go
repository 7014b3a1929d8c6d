package confinfo

import "errors"

// Sentinel errors of the package. Callers match them with errors.Is.
var (
	// ErrMalformed reports a conference-info body (RFC 4575) that cannot be parsed or breaks
	// the schema's rules (missing entity or version, unknown state, over a limit on counts).
	ErrMalformed = errors.New("bad conference-info")
	// ErrBodyTooLarge reports a body over Limits.MaxBytes.
	ErrBodyTooLarge = errors.New("conference-info body too large")
	// ErrVersionGap reports a partial document whose version does not follow the last one
	// applied: the subscriber must ask for full state again.
	ErrVersionGap = errors.New("conference-info version gap")
	// ErrNeedFullState reports a partial document before any full state.
	ErrNeedFullState = errors.New("partial conference-info before full state")
)
