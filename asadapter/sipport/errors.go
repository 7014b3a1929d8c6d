package sipport

import "errors"

// Sentinel errors shared by both sides. Callers match them with errors.Is.
var (
	// ErrNoResponse reports a client transaction that ended without a response: sipgo ends
	// one that way when the user agent is closing.
	ErrNoResponse = errors.New("transaction ended without a response")
	// ErrBadAOR reports a SIP URI unusable as an address of record.
	ErrBadAOR = errors.New("bad SIP URI")
	// ErrNoCredentials reports a challenge for a user (or the gateway) without credentials.
	ErrNoCredentials = errors.New("no credentials")
	// ErrBadChallenge reports a 401/407 whose challenge cannot be answered.
	ErrBadChallenge = errors.New("unusable digest challenge")
)
