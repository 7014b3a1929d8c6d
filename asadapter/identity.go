package asadapter

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"dsmgw/asadapter/sipport"
	"dsmgw/store"
)

// Calling identities: a call placed from the player of a browser that is logged in as a
// SIP user (the users side names the user, users/<user> says registered) goes out From
// that user's address of record, so the far end sees who calls, not the gateway. Other
// calls go out From the adapter's own identity.
//
// The users' state follows the change feed (the registration half writes users/<user>);
// it is loaded once when Run starts and again when the feed reports lost entries. Which
// browser a user is logged in with is not in the DSM (pages must not read client keys):
// it costs one lookup in the users side's records per call (sipport.Users.UserOf).

// userIdentity is what the adapter knows of one user from the DSM.
type userIdentity struct {
	rev          int64 // revision of users/<user> last applied
	sipURI       string
	registration string
	display      string // from the users index
}

// identities holds the registration state of the users.
type identities struct {
	mu    sync.RWMutex // guards users
	users map[string]*userIdentity
	// ready is set once a load has read every user: from then on a user missing here is
	// missing from the DSM (incoming calls are checked against it, edge_calls.go).
	ready atomic.Bool
}

func newIdentities() *identities {
	return &identities{users: make(map[string]*userIdentity)}
}

// user returns the entry of user, creating it. The caller holds mu for writing.
func (ids *identities) user(name string) *userIdentity {
	u := ids.users[name]
	if u == nil {
		u = &userIdentity{}
		ids.users[name] = u
	}
	return u
}

// apply updates users/<user> from a change (ops) or a full read (fields, replace true),
// ignoring anything older than what it holds.
func (ids *identities) apply(f *store.Schema, name string, rev int64, replace bool, fields map[string]string, ops []store.Op) {
	uf := f.Users.Fields
	ids.mu.Lock()
	defer ids.mu.Unlock()
	u := ids.user(name)
	if rev != 0 && rev <= u.rev {
		return
	}
	u.rev = rev
	if replace {
		u.sipURI, u.registration = fields[uf.SipURI], fields[uf.Registration]
		return
	}
	for _, o := range ops {
		v := ""
		if o.Kind == store.OpSet && o.Value != nil {
			v = *o.Value
		} else if o.Kind != store.OpDel {
			continue
		}
		switch o.Field {
		case uf.SipURI:
			u.sipURI = v
		case uf.Registration:
			u.registration = v
		}
	}
}

// setDisplay records a user's display name from the users index.
func (ids *identities) setDisplay(name, display string) {
	ids.mu.Lock()
	ids.user(name).display = display
	ids.mu.Unlock()
}

// of returns the display name and address of record of user when it is registered.
func (ids *identities) of(name string) (display, sipURI string, ok bool) {
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	u := ids.users[name]
	if u == nil || u.registration != sipport.RegRegistered || u.sipURI == "" {
		return "", "", false
	}
	return u.display, u.sipURI, true
}

// userObject returns the user of a users/<user> address ("" for anything else, such as
// a conference list users/<user>/conf/<id>).
func (a *Adapter) userObject(obj string) string {
	name, ok := strings.CutPrefix(obj, a.schema.Users.Prefix)
	if !ok || name == "" || strings.Contains(name, "/") {
		return ""
	}
	return name
}

// identityChange feeds the identities from the change feed; true if c was about users.
func (a *Adapter) identityChange(c store.Change) bool {
	if c.Obj == a.schema.Users.Index {
		for _, o := range c.Ops {
			if o.Kind == store.OpSet && o.Value != nil {
				a.ids.setDisplay(o.Field, *o.Value)
			}
		}
		for k, v := range c.Fields {
			a.ids.setDisplay(k, v)
		}
		return true
	}
	name := a.userObject(c.Obj)
	if name == "" {
		return false
	}
	a.ids.apply(a.schema, name, c.Rev, c.Kind == store.ChangeResync, c.Fields, c.Ops)
	return true
}

// loadIdentities reads the users index and every user object once (at start, and after
// the feed lost entries).
func (a *Adapter) loadIdentities(ctx context.Context) {
	idx, err := a.st.Snapshot(ctx, a.schema.Users.Index)
	if err != nil {
		a.log.Warn("read users index failed; calls go out with the adapter's identity until users change", "err", err)
		return
	}
	for name, display := range idx.Fields {
		if ctx.Err() != nil {
			return
		}
		a.ids.setDisplay(name, display)
		r, err := a.st.Snapshot(ctx, a.schema.UserAddress(name))
		if err != nil {
			a.log.Warn("read user failed", "user", name, "err", err)
			continue
		}
		a.ids.apply(a.schema, name, r.Rev, true, r.Fields, nil)
	}
	a.ids.ready.Store(true)
}
