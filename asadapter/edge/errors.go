package edge

import "errors"

// Sentinel errors of the edge. Callers match them with errors.Is.
var (
	// ErrConfig reports an unusable configuration.
	ErrConfig = errors.New("edge: bad configuration")
	// ErrNotSIP reports bytes whose first line is neither a SIP request line nor a status
	// line.
	ErrNotSIP = errors.New("edge: not a SIP message")
	// ErrIncomplete reports a message whose header section does not end (a datagram cut
	// short, or a stream that needs more bytes).
	ErrIncomplete = errors.New("edge: incomplete message")
	// ErrTooLarge reports a message beyond MaxMessage bytes, or with more headers of one
	// kind than the scanner keeps.
	ErrTooLarge = errors.New("edge: message too large")
	// ErrBadHeader reports a header the edge relies on that is missing or unusable
	// (Via, From, To, Call-ID, CSeq; Content-Length on a stream).
	ErrBadHeader = errors.New("edge: missing or bad header")
)
