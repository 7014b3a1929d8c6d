package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of the store. Callers match them with errors.Is; the WebSocket bridge maps
// each to a protocol error code.
var (
	ErrNoInstance    = errors.New("an instance name is required")
	ErrBadOp         = errors.New("malformed op")
	ErrBadAddress    = errors.New("malformed address")
	ErrTooManyOps    = errors.New("too many op elements")
	ErrValueTooLong  = errors.New("field name or value too long")
	ErrTooManyFields = errors.New("too many fields in object")
	// ErrTooManyObjects: a client key already has as many objects as it may (Claim).
	ErrTooManyObjects = errors.New("too many objects for one client key")
	ErrStale          = errors.New("stale seq: an older op than the last committed")
	ErrBaseAhead      = errors.New("base revision ahead of the object")
	ErrExpectFailed   = errors.New("expect failed")
	// ErrSeqReused: an op of a new epoch of its writer reuses a seq the writer already
	// committed (a reloaded page numbering from 1 again); see SeqReusedError.
	ErrSeqReused = errors.New("seq already used by an earlier op of this writer")
	// ErrScript: Redis answered the commit with an error of the script itself. Nothing was
	// written (the script writes only after every check), and a resend would fail the same
	// way, so this is a refusal, not a lost answer.
	ErrScript = errors.New("commit script failed in Redis")
)

// SeqReusedError carries the writer's last committed seq on the object, so that the writer
// can number its op Last+1. It matches ErrSeqReused.
type SeqReusedError struct {
	Obj  string
	Seq  int64
	Last int64
}

func (e *SeqReusedError) Error() string {
	return fmt.Sprintf("%s: seq %d of a new epoch, but %d was already committed", e.Obj, e.Seq, e.Last)
}

// Is makes errors.Is(err, ErrSeqReused) true.
func (e *SeqReusedError) Is(target error) bool { return target == ErrSeqReused }

// ExpectError reports which expect did not hold. It matches ErrExpectFailed.
type ExpectError struct {
	Field string
	Want  *string // nil: expected absent
	Have  *string // nil: absent
}

func (e *ExpectError) Error() string {
	return fmt.Sprintf("expect failed: %s is %s, expected %s", e.Field, show(e.Have), show(e.Want))
}

// Is makes errors.Is(err, ErrExpectFailed) true.
func (e *ExpectError) Is(target error) bool { return target == ErrExpectFailed }

func show(v *string) string {
	if v == nil {
		return "absent"
	}
	return fmt.Sprintf("%q", *v)
}
