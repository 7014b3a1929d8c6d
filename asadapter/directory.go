package asadapter

import (
	"context"
	"sync/atomic"
)

// Directory is where the users half keeps which browser each SIP user is logged in with:
// adapter-only state (its own Redis keys), never a DSM object. Every page's token may
// read some DSM objects, and a client key is what a page is known by; so the incoming-call
// lookup and the calling identity read it here (docs/dsm-protocol.md, "Users structure").
type Directory interface {
	// ClientOf returns the client key of the browser user is logged in with, "" when none.
	ClientOf(ctx context.Context, user string) (string, error)
	// UserOf returns the user the browser with client key client is logged in as, ""
	// when none.
	UserOf(ctx context.Context, client string) (string, error)
}

// noDirectory is the Directory of an adapter without a users half: nobody is logged in.
type noDirectory struct{}

func (noDirectory) ClientOf(context.Context, string) (string, error) { return "", nil }
func (noDirectory) UserOf(context.Context, string) (string, error)   { return "", nil }

// directoryRef holds the adapter's Directory; it is set after New (the users half is built
// on the adapter it sends through) and read on call paths.
type directoryRef struct{ p atomic.Pointer[Directory] }

func (r *directoryRef) get() Directory {
	if d := r.p.Load(); d != nil {
		return *d
	}
	return noDirectory{}
}

// SetDirectory tells the adapter where logged-in browsers are looked up (the users half,
// users.Users). Until then no browser is logged in: incoming calls to users are refused
// and calls go out with the adapter's own identity.
func (a *Adapter) SetDirectory(d Directory) {
	if d == nil {
		d = noDirectory{}
	}
	a.dir.p.Store(&d)
}
