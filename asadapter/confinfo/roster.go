package confinfo

import (
	"encoding/json"
	"fmt"
	"sort"
)

// Roster is the subscriber's copy of one conference's participants, built from
// conference-info documents by the merge rules of RFC 4575 section 4.6. It is not safe for
// concurrent use: one subscription owns it.
type Roster struct {
	version   uint32
	needsFull bool // no full state applied since the (re)start of the subscription
	users     map[string]*rosterUser
}

type rosterUser struct {
	display   string
	endpoints map[string]*rosterEndpoint
}

type rosterEndpoint struct {
	display string
	status  string
}

// NewRoster returns an empty roster waiting for a full state.
func NewRoster() *Roster {
	return &Roster{needsFull: true, users: map[string]*rosterUser{}}
}

// Restart makes the roster wait for a full state again, keeping the participants until it
// arrives (so the DSM copy does not flicker empty): used when a new subscription dialog
// starts, whose notifier may number versions afresh, and after a version gap.
func (r *Roster) Restart() { r.needsFull = true }

// NeedsFull reports whether the roster waits for a full state.
func (r *Roster) NeedsFull() bool { return r.needsFull }

// Version returns the version of the last document applied.
func (r *Roster) Version() uint32 { return r.version }

// Apply merges one document. It reports whether the document was applied (false: an old or
// repeated version, ignored as RFC 4575 section 4.6 asks). A partial document before any
// full state returns ErrNeedFullState; one that skips versions returns ErrVersionGap; in
// both cases nothing changes and the caller should refresh the subscription, which makes
// the notifier send full state.
func (r *Roster) Apply(ci *Info) (bool, error) {
	switch {
	case ci.State == StateFull || ci.State == StateDeleted:
		if !r.needsFull && ci.Version <= r.version {
			return false, nil
		}
	case r.needsFull:
		return false, fmt.Errorf("%w (version %d)", ErrNeedFullState, ci.Version)
	case ci.Version <= r.version:
		return false, nil
	case ci.Version != r.version+1:
		r.needsFull = true
		return false, fmt.Errorf("%w: have %d, got %d", ErrVersionGap, r.version, ci.Version)
	}
	r.version = ci.Version
	r.needsFull = false
	switch ci.State {
	case StateDeleted:
		r.users = map[string]*rosterUser{}
		return true, nil
	case StateFull:
		// A full document replaces everything, including the users when it has none.
		r.users = map[string]*rosterUser{}
	}
	if ci.Users == nil {
		return true, nil
	}
	switch ci.Users.State {
	case StateFull, StateDeleted:
		r.users = map[string]*rosterUser{}
	}
	if ci.Users.State == StateDeleted {
		return true, nil
	}
	for _, u := range ci.Users.List {
		r.applyUser(u)
	}
	return true, nil
}

func (r *Roster) applyUser(u User) {
	if u.State == StateDeleted {
		delete(r.users, u.Entity)
		return
	}
	ru := r.users[u.Entity]
	if ru == nil || u.State == StateFull {
		ru = &rosterUser{endpoints: map[string]*rosterEndpoint{}}
		r.users[u.Entity] = ru
	}
	if u.Display != nil {
		ru.display = *u.Display
	}
	for _, e := range u.Endpoints {
		if e.State == StateDeleted {
			delete(ru.endpoints, e.Entity)
			continue
		}
		re := ru.endpoints[e.Entity]
		if re == nil || e.State == StateFull {
			re = &rosterEndpoint{}
			ru.endpoints[e.Entity] = re
		}
		if e.Display != nil {
			re.display = *e.Display
		}
		if e.Status != nil {
			re.status = *e.Status
		}
	}
}

// statusRank orders endpoint statuses: a participant shows the most present status of
// its endpoints (a user in on a phone and disconnected on a laptop is connected).
var statusRank = map[string]int{
	"connected": 9, "on-hold": 8, "muted-via-focus": 7, "alerting": 6, "dialing-in": 5,
	"dialing-out": 4, "pending": 3, "disconnecting": 2, "disconnected": 1,
}

// participantStatus is the status written for a participant. A user listed without any
// endpoint status is taken as connected: RFC 4575 lists in users the conference's
// participants, and a notifier that reports no endpoints still reports presence.
func (u *rosterUser) status() string {
	best, rank := "connected", 0
	for _, e := range u.endpoints {
		if r := statusRank[e.status]; r > rank {
			best, rank = e.status, r
		}
	}
	return best
}

func (u *rosterUser) displayName() string {
	if u.display != "" {
		return u.display
	}
	for _, e := range u.endpoints {
		if e.display != "" {
			return e.display
		}
	}
	return ""
}

// ParticipantNames are the keys of a participant's JSON value (the schema's
// participantFields).
type ParticipantNames struct {
	Display string
	Status  string
}

// Limits of a participant as written to the DSM.
const (
	// maxParticipantField is the DSM's field-name limit: a participant whose entity URI is
	// longer cannot be given a field and is left out (and counted).
	maxParticipantField = 128
	// maxDisplayBytes truncates display names, which have no limit in RFC 4575, well below
	// the DSM's value limit.
	maxDisplayBytes = 256
)

// Fields renders the roster as DSM fields: one field per participant entity, value a JSON
// object {display, status} keyed by names. At most maxFields participants are rendered
// (in entity order, so the choice is stable); the number left out is returned.
func (r *Roster) Fields(names ParticipantNames, maxFields int) (map[string]string, int) {
	ents := make([]string, 0, len(r.users))
	dropped := 0
	for e := range r.users {
		if len(e) > maxParticipantField {
			dropped++
			continue
		}
		ents = append(ents, e)
	}
	sort.Strings(ents)
	if maxFields > 0 && len(ents) > maxFields {
		dropped += len(ents) - maxFields
		ents = ents[:maxFields]
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		u := r.users[e]
		disp := u.displayName()
		if len(disp) > maxDisplayBytes {
			disp = truncateUTF8(disp, maxDisplayBytes)
		}
		b, _ := json.Marshal(map[string]string{names.Display: disp, names.Status: u.status()})
		out[e] = string(b)
	}
	return out, dropped
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
