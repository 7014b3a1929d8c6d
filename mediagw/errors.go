package mediagw

import (
	"errors"
	"fmt"
)

// Sentinel errors. API errors from the server and from Client match them with errors.Is.
var (
	// ErrBadRequest is a malformed or out-of-range request (HTTP 400, 405, 413).
	ErrBadRequest = errors.New("bad request")
	// ErrUnauthorized is a missing or wrong API secret (HTTP 401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound is an unknown or already ended termination (HTTP 404).
	ErrNotFound = errors.New("termination not found")
	// ErrConflict is an operation not valid in the termination's state (HTTP 409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable is no free port pair, the termination limit, or shutdown (HTTP 503).
	ErrUnavailable = errors.New("unavailable")
	// ErrBadToken is a malformed, forged, expired or foreign media token.
	ErrBadToken = errors.New("bad media token")
	// ErrTokenExpired is a well-formed, authentic but expired media token; it matches
	// ErrBadToken too.
	ErrTokenExpired = fmt.Errorf("%w: expired", ErrBadToken)
	// ErrBadSignature is an event request whose signature is missing, wrong or too old.
	ErrBadSignature = errors.New("bad event signature")
	// ErrClosed is returned by operations on a closed gateway or termination.
	ErrClosed = errors.New("closed")
)

// APIError is an error answered by the HTTP API: status, machine code and message. It
// matches the sentinel of its code with errors.Is.
type APIError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"error"`
}

// Error returns the server's message with the status.
func (e *APIError) Error() string {
	return fmt.Sprintf("mediagw api: %d %s: %s", e.Status, e.Code, e.Message)
}

// Is maps the API code to the package sentinels.
func (e *APIError) Is(target error) bool {
	return target != nil && target == sentinelOf(e.Code)
}

// API error codes (the "code" member of a JSON error).
const (
	CodeBadRequest       = "bad_request"
	CodeUnauthorized     = "unauthorized"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodeTooLarge         = "too_large"
	CodeUnavailable      = "unavailable"
)

func sentinelOf(code string) error {
	switch code {
	case CodeBadRequest, CodeMethodNotAllowed, CodeTooLarge:
		return ErrBadRequest
	case CodeUnauthorized:
		return ErrUnauthorized
	case CodeNotFound:
		return ErrNotFound
	case CodeConflict:
		return ErrConflict
	case CodeUnavailable:
		return ErrUnavailable
	}
	return nil
}
