package otbridge

import (
	"context"
	"sync"
	"time"

	"dsmgw/store"
)

// subState is where a subscription stands in its delivery of revisions.
type subState uint8

const (
	// subLoading: the first snapshot or catch-up is being read; feed entries are held.
	subLoading subState = iota
	// subLive: every revision up to sent was sent; the next feed entry must be sent+1.
	subLive
	// subRefreshing: a gap was seen (or the feed lost entries); a catch-up or resync is
	// being read; feed entries are held.
	subRefreshing
)

// maxHeld bounds the feed entries a subscription keeps while it loads or catches up; past
// that it drops them and reads again from Redis (which has them all).
const maxHeld = 256

// refreshRetry is the pause before a failed catch-up read is tried again.
const refreshRetry = 500 * time.Millisecond

// sub is one subscription of one connection. All fields but c and obj are guarded by c.mu.
type sub struct {
	c   *conn
	obj string

	state     subState
	sent      int64     // the highest revision sent to the client (snapshot, op, ack, resync)
	held      []*change // feed entries received while not live, in feed order
	overflow  bool      // held entries were dropped: read again after the current read
	forceSnap bool      // the next read must be a snapshot (the feed lost entries)
	queued    bool      // waiting in the refresher's queue
	removed   bool      // unsubscribed or connection gone
}

func (c *conn) subscribe(m Msg) {
	if !c.allow() {
		c.reject(protoErr(CodeRateLimited, "over %g ops per second", c.b.cfg.OpsPerSecond), m.ID, m.Obj)
		return
	}
	if !c.b.cfg.Policy.CanRead(c.claims, m.Obj) {
		c.reject(protoErr(CodeForbidden, "this token may not read %s", m.Obj), m.ID, m.Obj)
		return
	}
	c.mu.Lock()
	if c.subs[m.Obj] != nil {
		c.mu.Unlock()
		c.reject(protoErr(CodeBadMessage, "already subscribed to %s", m.Obj), m.ID, m.Obj)
		return
	}
	if len(c.subs) >= c.b.cfg.MaxSubs {
		c.mu.Unlock()
		c.reject(protoErr(CodeTooManySubs, "at most %d subscriptions per connection", c.b.cfg.MaxSubs), m.ID, m.Obj)
		return
	}
	s := &sub{c: c, obj: m.Obj}
	c.subs[m.Obj] = s
	c.mu.Unlock()
	// Register before reading, so that every commit after the read reaches s through the
	// feed; entries at or below the read revision are dropped.
	c.b.hub.add(s)
	since := int64(-1)
	if m.Since != nil {
		since = *m.Since
	}
	if err := c.load(s, since, true); err != nil {
		c.mu.Lock()
		s.removed = true
		if c.subs != nil && c.subs[m.Obj] == s {
			delete(c.subs, m.Obj)
		}
		c.mu.Unlock()
		c.b.hub.remove(s)
		c.log.Warn("subscription read failed", "obj", m.Obj, "err", err)
		c.reject(protoErr(CodeUnavailable, "cannot read %s now; retry later", m.Obj), m.ID, m.Obj)
	}
}

func (c *conn) unsubscribe(m Msg) {
	c.mu.Lock()
	s := c.subs[m.Obj]
	if s == nil {
		c.mu.Unlock()
		c.reject(protoErr(CodeBadMessage, "not subscribed to %s", m.Obj), m.ID, m.Obj)
		return
	}
	s.removed = true
	delete(c.subs, m.Obj)
	c.enqueueLocked(encodeUnsubbed(m.Obj))
	// An op still awaiting its ordered ack is acked now: nothing orders it any more.
	if inf := c.inflight[m.Obj]; inf != nil && inf.rev > 0 {
		delete(c.inflight, m.Obj)
		c.enqueueLocked(encodeAck(m.Obj, inf.seq, inf.rev))
	}
	c.mu.Unlock()
	c.b.hub.remove(s)
}

// load reads s from the store (a snapshot when since < 0 or the op log no longer reaches
// since) and brings it live: it sends the snapshot, catch-up or resync, then the entries
// the feed delivered meanwhile.
func (c *conn) load(s *sub, since int64, initial bool) error {
	ctx, cancel := context.WithTimeout(c.b.ctx, c.b.cfg.CommitTimeout)
	rd, err := c.b.st.Since(ctx, s.obj, since)
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.removed || c.closed {
		return nil
	}
	if err != nil {
		return err
	}
	switch {
	case rd.Fields != nil && initial:
		c.enqueueLocked(encodeFields(TypeSnap, s.obj, rd.Rev, rd.Fields))
		s.sent = rd.Rev
	case rd.Fields != nil:
		if rd.Rev != s.sent {
			c.b.m.resyncs.Inc()
			c.enqueueLocked(encodeFields(TypeResync, s.obj, rd.Rev, rd.Fields))
			s.sent = rd.Rev
		}
	case initial:
		c.enqueueLocked(encodeCatchup(s.obj, rd.Rev, rd.Log, c.key))
		// The client takes its own entry in the log as the ack of its op.
		if inf := c.inflight[s.obj]; inf != nil {
			for _, e := range rd.Log {
				if e.Client == c.key && e.Seq == inf.seq {
					delete(c.inflight, s.obj)
				}
			}
		}
		s.sent = rd.Rev
	default:
		for _, e := range rd.Log {
			if e.Rev == s.sent+1 {
				c.sendEntryLocked(s, e.Rev, e.Client, e.Seq, e.Ops, nil)
				s.sent = e.Rev
			}
		}
	}
	s.forceSnap = false
	s.state = subLive
	held, over := s.held, s.overflow
	s.held, s.overflow = nil, false
	for _, ch := range held {
		if s.state == subLive {
			c.applyLocked(s, ch)
		} else {
			c.holdLocked(s, ch)
		}
	}
	if over && s.state == subLive {
		c.startRefreshLocked(s)
	}
	c.settleLocked(s)
	return nil
}

// deliver hands a feed entry to s (called by the feed handler; never blocks).
func (c *conn) deliver(s *sub, ch *change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.removed || c.closed {
		return
	}
	if s.state != subLive {
		c.holdLocked(s, ch)
		return
	}
	c.applyLocked(s, ch)
}

func (c *conn) holdLocked(s *sub, ch *change) {
	if s.overflow {
		return
	}
	if len(s.held) >= maxHeld {
		s.held, s.overflow = nil, true
		return
	}
	s.held = append(s.held, ch)
}

// applyLocked sends one feed entry to a live subscription, or starts a catch-up when it
// is not the next revision.
func (c *conn) applyLocked(s *sub, ch *change) {
	if ch.Rev <= s.sent {
		return // already in the snapshot or catch-up
	}
	if ch.Kind == store.ChangeResync {
		c.b.m.resyncs.Inc()
		c.enqueueLocked(ch.message())
		s.sent = ch.Rev
		c.settleLocked(s)
		return
	}
	if ch.Rev > s.sent+1 {
		c.holdLocked(s, ch)
		c.startRefreshLocked(s)
		return
	}
	c.sendEntryLocked(s, ch.Rev, ch.Client, ch.Seq, ch.Ops, ch)
	s.sent = ch.Rev
	c.settleLocked(s)
}

// sendEntryLocked sends revision rev of s: as the ack when it is this connection's op in
// flight, as an op with its seq when it is another op of this client (an earlier
// connection's), else as a remote op (ch's shared encoding when there is one).
func (c *conn) sendEntryLocked(s *sub, rev int64, client string, seq int64, ops []store.Op, ch *change) {
	if client == c.key && seq > 0 {
		if inf := c.inflight[s.obj]; inf != nil && inf.seq == seq {
			delete(c.inflight, s.obj)
			c.enqueueLocked(encodeAck(s.obj, seq, rev))
			return
		}
		c.enqueueLocked(encodeOp(s.obj, rev, seq, ops))
		return
	}
	if ch != nil {
		c.enqueueLocked(ch.message())
		return
	}
	c.enqueueLocked(encodeOp(s.obj, rev, 0, ops))
}

// settleLocked acks the op in flight on s once s has sent its revision (a resync or a
// catch-up may have passed it without naming it).
func (c *conn) settleLocked(s *sub) {
	if inf := c.inflight[s.obj]; inf != nil && inf.rev > 0 && inf.rev <= s.sent && s.state == subLive {
		delete(c.inflight, s.obj)
		c.enqueueLocked(encodeAck(s.obj, inf.seq, inf.rev))
	}
}

func (c *conn) startRefreshLocked(s *sub) {
	s.state = subRefreshing
	if !s.queued {
		s.queued = true
		c.b.refresh.push(s)
	}
}

// forceResync makes s re-read a snapshot (its feed shard lost entries).
func (c *conn) forceResync(s *sub) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.removed || c.closed {
		return
	}
	s.forceSnap = true
	if s.state == subLive {
		c.startRefreshLocked(s)
	}
}

// refreshSub runs one catch-up of s on a refresher worker.
func (c *conn) refreshSub(s *sub) {
	c.mu.Lock()
	s.queued = false
	if s.removed || c.closed {
		c.mu.Unlock()
		return
	}
	since := s.sent
	if s.forceSnap {
		since = -1
	}
	c.mu.Unlock()
	if err := c.load(s, since, false); err != nil {
		c.log.Warn("catch-up read failed; retrying", "obj", s.obj, "err", err)
		time.AfterFunc(refreshRetry, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !s.removed && !s.queued {
				s.queued = true
				c.b.refresh.push(s)
			}
		})
	}
}

// refresher is a queue of subscriptions to catch up, served by a few workers so that a
// burst of gaps (a lost feed shard) makes a bounded number of Redis reads at once.
type refresher struct {
	mu   sync.Mutex
	q    []*sub
	wake chan struct{}
}

func newRefresher() *refresher { return &refresher{wake: make(chan struct{}, 1)} }

func (r *refresher) push(s *sub) {
	r.mu.Lock()
	r.q = append(r.q, s)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *refresher) pop() *sub {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.q) == 0 {
		r.q = nil
		return nil
	}
	s := r.q[0]
	r.q[0] = nil
	r.q = r.q[1:]
	if len(r.q) > 0 {
		select { // recruit another worker for the rest
		case r.wake <- struct{}{}:
		default:
		}
	}
	return s
}

func (r *refresher) work(ctx context.Context, b *Bridge) {
	for {
		if s := r.pop(); s != nil {
			s.c.refreshSub(s)
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
	}
}
