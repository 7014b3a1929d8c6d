package dsmclient

import (
	"fmt"
	"maps"
	"time"

	"dsmgw/store"
)

// Event tells a listener that an object's view changed.
type Event struct {
	Obj    string
	Rev    int64    // the server revision the view is now based on
	Fields []string // fields whose value in the view may have changed
	// Local is set for a change made by this client (Do); Rollback when a refused op was
	// taken back; Reset when the server state was replaced (snapshot or resync).
	Local, Rollback, Reset bool
}

// pend is one local op: in flight (sent, awaiting its ack) or buffered.
type pend struct {
	seq    int64 // assigned when sent; resends keep it
	ops    []store.Op
	expect bool // has an expect element: never composed with others
	sent   time.Time
}

// Object is the client's replica of one object, kept by the Jupiter client algorithm
// (docs/dsm-protocol.md, "Client states"): the server state at the last revision received,
// at most one op in flight, and a buffer of later local ops. The view is
// server · inflight · buffer. All state is guarded by the client's mutex.
type Object struct {
	c          *Client
	addr       string
	subscribed bool // false: blind writes only (no view)
	loaded     bool // the snapshot or catch-up of the current connection arrived

	server   map[string]string
	rev      int64
	view     map[string]string
	inflight *pend
	buffer   []*pend
	seq      int64 // last seq used on this object by this client

	listeners map[int]func(Event)
	nextID    int
	ready     chan struct{} // closed at the first snapshot
	subErr    error
}

// Addr returns the object's address.
func (o *Object) Addr() string { return o.addr }

// Get returns a field of the view.
func (o *Object) Get(field string) (string, bool) {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	v, ok := o.view[field]
	return v, ok
}

// Fields returns a copy of the view.
func (o *Object) Fields() map[string]string {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	return maps.Clone(o.view)
}

// Server returns a copy of the server state and its revision.
func (o *Object) Server() (map[string]string, int64) {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	return maps.Clone(o.server), o.rev
}

// Rev returns the revision of the server state.
func (o *Object) Rev() int64 {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	return o.rev
}

// Pending reports whether an op is in flight or buffered.
func (o *Object) Pending() bool {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	return o.inflight != nil || len(o.buffer) > 0
}

// OnChange registers fn for every change of the view; fn runs on the client's reader
// goroutine (or the caller of Do) without the lock held. The returned func removes it.
func (o *Object) OnChange(fn func(Event)) (cancel func()) {
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	if o.listeners == nil {
		o.listeners = make(map[int]func(Event))
	}
	id := o.nextID
	o.nextID++
	o.listeners[id] = fn
	return func() {
		o.c.mu.Lock()
		defer o.c.mu.Unlock()
		delete(o.listeners, id)
	}
}

// Do applies ops to the view at once and sends them (now, or after the op in flight is
// acknowledged). A later nack takes them back. It fails only on an op the server would
// refuse for its shape (empty, too many elements, too long).
func (o *Object) Do(ops ...store.Op) error {
	c := o.c
	c.mu.Lock()
	if err := store.Validate(ops, c.opLimits()); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("dsmclient: op on %s: %w", o.addr, err)
	}
	ops = append([]store.Op(nil), ops...)
	p := &pend{ops: ops}
	for _, x := range ops {
		if x.Kind == store.OpExpect {
			p.expect = true
		}
	}
	// Compose with the last buffered op when neither has an expect: an expect makes an op
	// fail as a whole, so ops with expects stay separate and fail alone.
	if n := len(o.buffer); n > 0 && !p.expect && !o.buffer[n-1].expect &&
		len(o.buffer[n-1].ops)+len(ops) <= c.opLimits().MaxOps {
		last := o.buffer[n-1]
		last.ops = append(last.ops, ops...)
	} else {
		o.buffer = append(o.buffer, p)
	}
	var ev *Event
	if o.subscribed {
		store.Apply(o.view, ops)
		ev = &Event{Obj: o.addr, Rev: o.rev, Fields: fieldsOf(ops), Local: true}
	}
	c.flushLocked(o)
	ls := o.listenersLocked()
	c.mu.Unlock()
	notify(ls, ev)
	return nil
}

func (o *Object) listenersLocked() []func(Event) {
	if len(o.listeners) == 0 {
		return nil
	}
	out := make([]func(Event), 0, len(o.listeners))
	for _, l := range o.listeners {
		out = append(out, l)
	}
	return out
}

func notify(ls []func(Event), ev *Event) {
	if ev == nil {
		return
	}
	for _, l := range ls {
		l(*ev)
	}
}

func fieldsOf(ops []store.Op) []string {
	out := make([]string, 0, len(ops))
	for _, x := range ops {
		if x.Kind != store.OpExpect {
			out = append(out, x.Field)
		}
	}
	return out
}

// recomputeLocked rebuilds the view as server · inflight · buffer and returns the fields
// whose value changed.
func (o *Object) recomputeLocked() []string {
	next := maps.Clone(o.server)
	if next == nil {
		next = map[string]string{}
	}
	if o.inflight != nil {
		store.Apply(next, o.inflight.ops)
	}
	for _, p := range o.buffer {
		store.Apply(next, p.ops)
	}
	var changed []string
	for k, v := range next {
		if w, ok := o.view[k]; !ok || w != v {
			changed = append(changed, k)
		}
	}
	for k := range o.view {
		if _, ok := next[k]; !ok {
			changed = append(changed, k)
		}
	}
	o.view = next
	return changed
}

// pendingOps returns the ops of the in-flight op and the buffer, for the transform.
func (o *Object) pendingOps() [][]store.Op {
	out := make([][]store.Op, 0, 1+len(o.buffer))
	if o.inflight != nil {
		out = append(out, o.inflight.ops)
	}
	for _, p := range o.buffer {
		out = append(out, p.ops)
	}
	return out
}

// remoteLocked applies a committed op of another writer at rev: to the server state as is,
// and to the view transformed against the pending local ops (the server orders those
// after it, so they win on the fields they touch).
func (o *Object) remoteLocked(rev int64, ops []store.Op) *Event {
	if rev <= o.rev {
		return nil
	}
	if rev != o.rev+1 {
		o.c.log.Error("revision gap from server", "obj", o.addr, "have", o.rev, "got", rev)
	}
	store.Apply(o.server, ops)
	o.rev = rev
	t := store.TransformServer(ops, o.pendingOps()...)
	if len(t) == 0 {
		return nil
	}
	store.Apply(o.view, t)
	return &Event{Obj: o.addr, Rev: rev, Fields: fieldsOf(t)}
}

// ownLocked handles a committed entry carrying this client's seq: the ack of the op in
// flight when the seq matches, else an op an earlier connection committed.
func (o *Object) ownLocked(rev, seq int64, ops []store.Op, at time.Time) *Event {
	if p := o.inflight; p != nil && p.seq == seq {
		return o.ackLocked(p, rev, ops, at)
	}
	return o.remoteLocked(rev, ops)
}

// ackLocked moves the op in flight into the server state at rev. When rev is not newer
// than the server state (a resync or snapshot already contained the op, and later ops may
// have followed it), the view is rebuilt instead, since those later ops win over it.
func (o *Object) ackLocked(p *pend, rev int64, ops []store.Op, at time.Time) *Event {
	o.inflight = nil
	o.c.ackHook(o.addr, p, rev, at)
	if !o.subscribed {
		return nil
	}
	if rev > o.rev {
		if rev != o.rev+1 {
			o.c.log.Error("ack out of order", "obj", o.addr, "have", o.rev, "got", rev)
		}
		store.Apply(o.server, store.Writes(ops))
		o.rev = rev
		return nil
	}
	if changed := o.recomputeLocked(); len(changed) > 0 {
		return &Event{Obj: o.addr, Rev: o.rev, Fields: changed}
	}
	return nil
}

// resetLocked replaces the server state (snapshot or resync).
func (o *Object) resetLocked(rev int64, fields map[string]string) *Event {
	if fields == nil {
		fields = map[string]string{}
	}
	o.server = fields
	o.rev = rev
	changed := o.recomputeLocked()
	return &Event{Obj: o.addr, Rev: rev, Fields: changed, Reset: true}
}
