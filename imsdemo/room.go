package imsdemo

import (
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"dsmgw/imsdemo/mixer"
)

// Kind is what a room does with its participants' audio.
type Kind int

// Room kinds.
const (
	// KindConference mixes everyone for everyone but themselves.
	KindConference Kind = iota
	// KindEcho is a private room of one that hears itself: the echo service.
	KindEcho
	// KindTalkGroup is push-to-talk: the same room, roster and mixer, with one talker
	// at a time. Nobody holds the floor when joining (leg.floor is false); the room's
	// floor control server (talkGroup, 3GPP TS 24.380) grants it with leg.setFloor,
	// which opens that participant's speak gate. Requests to TalkGroupDomain make one.
	KindTalkGroup
)

func (k Kind) String() string {
	switch k {
	case KindEcho:
		return "echo"
	case KindTalkGroup:
		return "talk-group"
	}
	return "conference"
}

// roomKey names a room on the server: conferences and talk groups have a namespace each
// (they live in different domains), so "ops" may be both.
type roomKey struct {
	kind Kind
	name string
}

// room is one conference (or one echo session, or one talk group): a mixer on a scheduler's clock, the
// conference state of RFC 4575 (members and their endpoints) and its subscribers.
type room struct {
	s     *Server
	name  string
	uri   string
	kind  Kind
	mix   *mixer.Mixer
	sched *mixer.Scheduler
	log   *slog.Logger
	tg    *talkGroup // floor control of a talk group; nil for the other kinds

	mu      sync.Mutex // guards everything below
	members []*member  // in order of arrival, as the state lists them
	legs    map[*leg]struct{}
	subs    map[*subscription]struct{}
	closed  bool // taken off the server: a newcomer must create the room again
}

// validRoomName keeps room names to URI user characters that need no escaping and to a
// length a DSM field and a log line can carry.
func validRoomName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for _, c := range n {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.ContainsRune("-_.!~+", c):
		default:
			return false
		}
	}
	return true
}

// empty reports whether nobody takes part in or watches the room (r.mu held).
func (r *room) empty() bool {
	return len(r.legs) == 0 && len(r.subs) == 0
}

// member returns the member of an identity, or nil (r.mu held).
func (r *room) member(entity string) *member {
	for _, m := range r.members {
		if m.entity == entity {
			return m
		}
	}
	return nil
}

// join adds a leg to the conference state and tells the subscribers.
func (r *room) join(l *leg, entity, display, contact string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.legs[l] = struct{}{}
	if r.kind == KindEcho {
		return
	}
	m := r.member(entity)
	isNew := m == nil
	if isNew {
		m = &member{entity: entity, display: display}
		r.members = append(r.members, m)
	} else if display != "" {
		m.display = display
	}
	e := &endpoint{entity: contact, display: display, joined: time.Now(), leg: l}
	// One endpoint per session: a Contact already in use by a live session of the member
	// gets a suffix; a departed one is replaced by the newcomer.
	for i := 0; ; i++ {
		ent := contact
		if i > 0 {
			ent = contact + ";session=" + strconv.Itoa(i)
		}
		var old *endpoint
		idx := -1
		for k, x := range m.endpoints {
			if x.entity == ent {
				old, idx = x, k
			}
		}
		if old == nil {
			e.entity = ent
			m.endpoints = append(m.endpoints, e)
			break
		}
		if old.leg == nil {
			e.entity = ent
			m.endpoints[idx] = e
			break
		}
	}
	l.ep = e
	l.fillEndpoint(e)
	state := statePartial
	if isNew {
		state = stateFull
	}
	r.publish(m, state, []*endpoint{e})
}

// update tells the subscribers that a leg's status or media changed.
func (r *room) update(l *leg) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := l.ep
	if e == nil || e.leg == nil {
		return
	}
	status, dir, ssrc := e.status, e.dir, e.ssrc
	l.fillEndpoint(e)
	if e.status == status && e.dir == dir && e.ssrc == ssrc {
		return
	}
	r.publish(r.memberOf(e), statePartial, []*endpoint{e})
}

// leave takes a leg out; its endpoint stays in the state as disconnected for the linger
// time. It returns true when the room is now empty.
func (r *room) leave(l *leg, method, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.legs[l]; !ok {
		return false
	}
	delete(r.legs, l)
	if e := l.ep; e != nil && e.leg != nil {
		now := time.Now()
		e.leg, e.status, e.discMethod, e.discWhen, e.discReason = nil, statusDisconnected, method, now, reason
		e.goneAt = now.Add(r.s.cfg.DepartedLinger)
		r.publish(r.memberOf(e), statePartial, []*endpoint{e})
	}
	return r.empty()
}

// expire deletes departed endpoints whose linger time is over, and members left with no
// endpoint.
func (r *room) expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 0; i < len(r.members); i++ {
		m := r.members[i]
		var gone []*endpoint
		keep := m.endpoints[:0]
		for _, e := range m.endpoints {
			if e.leg == nil && now.After(e.goneAt) {
				gone = append(gone, e)
			} else {
				keep = append(keep, e)
			}
		}
		m.endpoints = keep
		if len(gone) == 0 {
			continue
		}
		if len(keep) == 0 {
			r.members = append(r.members[:i], r.members[i+1:]...)
			i--
			r.fanout(xUser{Entity: m.entity, State: stateDeleted})
			continue
		}
		u := xUser{Entity: m.entity, State: statePartial}
		for _, e := range gone {
			u.Endpoints = append(u.Endpoints, xEndpoint{Entity: e.entity, State: stateDeleted})
		}
		r.fanout(u)
	}
}

func (r *room) memberOf(e *endpoint) *member {
	for _, m := range r.members {
		for _, x := range m.endpoints {
			if x == e {
				return m
			}
		}
	}
	return &member{entity: e.entity} // cannot happen: endpoints live in members
}

// publish sends a change of member m to the subscribers: the whole member when state is
// full, else only the endpoints given (r.mu held).
func (r *room) publish(m *member, state string, eps []*endpoint) {
	if state == stateFull {
		r.fanout(m.xml(stateFull))
		return
	}
	u := xUser{Entity: m.entity, State: statePartial}
	for _, e := range eps {
		u.Endpoints = append(u.Endpoints, e.xml())
	}
	r.fanout(u)
}

// fanout queues a partial change for every subscriber (r.mu held).
func (r *room) fanout(u xUser) {
	for sub := range r.subs {
		sub.enqueue(u, r.userCount())
	}
}

// userCount is the number of members with a live session (r.mu held).
func (r *room) userCount() int {
	n := 0
	for _, m := range r.members {
		if m.connected() > 0 {
			n++
		}
	}
	return n
}

// fullState renders the whole conference state, without a version (r.mu held).
func (r *room) fullState() *xConferenceInfo {
	doc := &xConferenceInfo{Entity: r.uri, State: stateFull,
		Description: &xDescription{DisplayText: r.name, MaxUsers: r.s.cfg.Mixer.MaxParticipants,
			Media: []xAvMedia{{Label: "main-audio", Type: "audio", Status: string(SendRecv)}}},
		ConfState: &xConfState{UserCount: r.userCount(), Active: len(r.legs) > 0},
		Users:     &xUsers{State: stateFull, List: []xUser{}}}
	for _, m := range r.members {
		doc.Users.List = append(doc.Users.List, m.xml(stateFull))
	}
	return doc
}

// snapshot lists the room's legs and subscriptions (for the janitor and the shutdown).
func (r *room) snapshot() ([]*leg, []*subscription) {
	r.mu.Lock()
	defer r.mu.Unlock()
	legs := make([]*leg, 0, len(r.legs))
	for l := range r.legs {
		legs = append(legs, l)
	}
	subs := make([]*subscription, 0, len(r.subs))
	for s := range r.subs {
		subs = append(subs, s)
	}
	return legs, subs
}
