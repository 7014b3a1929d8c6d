package asadapter

import "errors"

// Sentinel errors of the registration and conference-subscription half (users.go,
// register.go, subscribe.go, confinfo.go). They live apart from errors.go so the two halves
// of the package can be built side by side; callers match them with errors.Is.
var (
	// ErrUsersConfig reports an unusable UsersConfig.
	ErrUsersConfig = errors.New("asadapter: bad users configuration")
	// ErrBadConferenceInfo reports a conference-info body (RFC 4575) that cannot be parsed
	// or breaks the schema's rules (missing entity or version, unknown state).
	ErrBadConferenceInfo = errors.New("asadapter: bad conference-info")
	// ErrBodyTooLarge reports a NOTIFY body over the configured limit.
	ErrBodyTooLarge = errors.New("asadapter: body too large")
	// ErrVersionGap reports a partial conference-info whose version does not follow the
	// last one applied: the subscriber must ask for full state again.
	ErrVersionGap = errors.New("asadapter: conference-info version gap")
	// ErrNeedFullState reports a partial conference-info before any full state.
	ErrNeedFullState = errors.New("asadapter: partial conference-info before full state")
	// ErrBadRegistration reports an unusable registration request (HTTP API).
	ErrBadRegistration = errors.New("asadapter: bad registration request")
	// ErrLeaseLost reports that another instance now holds a user's registration lease.
	ErrLeaseLost = errors.New("asadapter: user lease lost")
	// ErrNoRegistration reports a user without a registration record.
	ErrNoRegistration = errors.New("asadapter: no registration")
)
