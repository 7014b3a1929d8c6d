package asadapter

import (
	"errors"
	"fmt"
)

// Sentinel errors of the adapter. Callers match them with errors.Is.
var (
	// ErrConfig reports an unusable configuration.
	ErrConfig = errors.New("asadapter: bad configuration")
	// ErrClaimLost reports that another instance holds the claim of a player.
	ErrClaimLost = errors.New("asadapter: claim lost")
	// ErrNoDialog reports that no dialog state is stored for a player.
	ErrNoDialog = errors.New("asadapter: no dialog")
	// ErrFenced reports that a call no longer acts: its claim could not be renewed in
	// time (lease.go).
	ErrFenced = errors.New("asadapter: call fenced")
	// ErrBadRetryAfter reports a Retry-After value that is not delta-seconds.
	ErrBadRetryAfter = errors.New("asadapter: bad Retry-After")
)

// SIPError is a SIP final response that ended a request: its status code and reason are
// what the adapter writes to the player object for the browser to show.
type SIPError struct {
	Status int
	Reason string
}

// Error renders the status line the far end sent.
func (e *SIPError) Error() string { return fmt.Sprintf("asadapter: SIP %d %s", e.Status, e.Reason) }
