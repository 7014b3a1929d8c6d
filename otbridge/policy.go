package otbridge

import (
	"strings"

	"dsmgw/store"
)

// Policy decides what a token may read and write. The bridge asks CanRead before a
// subscription and CanWrite for every field an op touches (set, del and expect alike:
// an expect reveals a value).
type Policy interface {
	CanRead(c Claims, obj string) bool
	CanWrite(c Claims, obj, field string) bool
}

// DefaultPolicy implements the Grants of docs/dsm-protocol.md: a token for client K may
// read and write the objects players/K/..., may write only the fields players/K/... of the
// players index, may read the users directory (users), and, when it is bound to user U,
// may read users/U and users/U/... (that user's object and conference lists, and no other
// user's) and write the fields conferences, services and sign_in of users/U (the
// conferences the user's page watches and joins, the IMS services it offers, and, in demo
// mode only, its sign-in: the page chooses them itself; the AS adapter subscribes to what
// the first lists, registers the second, and registers the user while the third is
// refreshed; outside demo mode nothing reads sign_in).
// Which objects exist under players/K is the schema's business (store refuses the rest).
type DefaultPolicy struct{}

const (
	playersIndex  = "players"
	playersPrefix = "players/"
	usersIndex    = "users"
	usersPrefix   = "users/"
	// conferencesField and servicesField are the fields of users/<user> the user's own
	// token writes.
	conferencesField = "conferences"
	servicesField    = "services"
	signInField      = "sign_in"
)

func ownPlayer(c Claims, s string) bool {
	rest, ok := strings.CutPrefix(s, playersPrefix)
	if !ok {
		return false
	}
	rest, ok = strings.CutPrefix(rest, c.Client+"/")
	return ok && rest != ""
}

// ownUser reports whether obj is users/<c.User> or below it.
func ownUser(c Claims, obj string) bool {
	if c.User == "" {
		return false
	}
	rest, ok := strings.CutPrefix(obj, usersPrefix)
	if !ok {
		return false
	}
	u, _, _ := strings.Cut(rest, "/")
	return u == c.User
}

// CanRead reports whether c may subscribe to obj.
func (DefaultPolicy) CanRead(c Claims, obj string) bool {
	return ownPlayer(c, obj) || obj == usersIndex || ownUser(c, obj)
}

// CanWrite reports whether c may write field of obj.
func (DefaultPolicy) CanWrite(c Claims, obj, field string) bool {
	if obj == playersIndex {
		return ownPlayer(c, field) && store.ValidAddress(field) == nil
	}
	if c.User != "" && obj == usersPrefix+c.User {
		return field == conferencesField || field == servicesField || field == signInField
	}
	return ownPlayer(c, obj)
}

// AllowAll grants everything to every valid token. It exists for load tests and
// convergence tests in which many clients share objects; never use it in production.
type AllowAll struct{}

// CanRead always reports true.
func (AllowAll) CanRead(Claims, string) bool { return true }

// CanWrite always reports true.
func (AllowAll) CanWrite(Claims, string, string) bool { return true }
