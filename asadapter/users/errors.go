package users

import "errors"

// Sentinel errors of the users side. Callers match them with errors.Is.
var (
	// ErrConfig reports an unusable Config or missing dependencies.
	ErrConfig = errors.New("bad users configuration")
	// ErrBadRegistration reports an unusable registration request (HTTP API).
	ErrBadRegistration = errors.New("bad registration request")
	// ErrLeaseLost reports that another instance now holds a user's registration lease.
	ErrLeaseLost = errors.New("user lease lost")
	// ErrNoRegistration reports a user without a registration record.
	ErrNoRegistration = errors.New("no registration")
	// ErrSealed reports a stored password that cannot be opened (another secret sealed it).
	ErrSealed = errors.New("sealed password unreadable")
)
