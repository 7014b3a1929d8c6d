package store

import (
	"errors"
	"fmt"
)

// Sentinel errors of the store. Callers match them with errors.Is; the WebSocket bridge maps
// each to a protocol error code.
var (
	ErrBadOp         = errors.New("malformed op")
	ErrBadAddress    = errors.New("malformed address")
	ErrTooManyOps    = errors.New("too many op elements")
	ErrValueTooLong  = errors.New("field name or value too long")
	ErrTooManyFields = errors.New("too many fields in object")
	ErrStale         = errors.New("stale seq: an older op than the last committed")
	ErrBaseAhead     = errors.New("base revision ahead of the object")
	ErrExpectFailed  = errors.New("expect failed")
)

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
