package asadapter

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// cleanupTimeout bounds the work done when a call ends (BYE, media gateway delete, DSM
// writes): long enough for a BYE's transaction over a slow path (Timer F is 32 s, but a
// live peer answers within a second), short enough that a dead peer does not hold a
// goroutine for long.
const cleanupTimeout = 8 * time.Second

// call is one call owned by this instance. Its goroutine (runOut, or runIn then
// confirmed) owns the call's lifecycle; SIP handlers signal it through the channels and
// share the dialog under mu.
type call struct {
	a      *Adapter
	player string
	dir    Direction
	// cl is our claim on the player (records.go): its generation guards every commit.
	cl claimed
	// svc is the call's IMS service (asadapter/icsi), set before the call's goroutine
	// starts; ptt its floor side when it is a push-to-talk call (call_ptt.go), nil
	// otherwise, set by the call's goroutine under mu.
	svc    icsi.Service
	ptt    *pttCall
	log    *slog.Logger
	seenAt time.Time // when the browser's connecting was seen (post-dial delay)

	wakeC chan struct{} // the player object changed (cap 1: wake-ups merge)
	byeC  chan struct{} // the far end sent BYE (cap 1)
	ackC  chan struct{} // the ACK for our 2xx arrived (cap 1)
	seC   chan struct{} // the peer refreshed the session (cap 1)
	moveC chan string   // move the media to another media gateway, and why (cap 1; mgwpool.go)
	done  chan struct{} // closed when the call's goroutine and its helpers have ended

	// ctx is the call's life: Run's context, cancelled by end to stop the call's helpers
	// (progress writes, re-ACKs, CANCEL), which helpers owns and end waits for.
	ctx     context.Context
	stop    context.CancelFunc
	helpers owner

	progress progressQueue // progress writes of an outgoing call (call_out_progress.go)

	// who is the identity an outgoing call is placed as (set before its goroutine starts).
	who caller

	// merge identifies the INVITE of an incoming call for merged-request detection
	// (RFC 3261 section 8.2.2.2): From tag, CSeq and the user called ("" for outgoing).
	merge string

	// peer is where an incoming call's requests come from (the INVITE's source: the
	// edge's next hop of the dialog); releaseEdge gives back the call's place in its
	// untrusted source's bound (nil for a trusted source). Both are set before addCall.
	peer        netip.Addr
	releaseEdge func()

	// resumed: the call was taken over from a lost instance (call_resume.go).
	resumed  bool
	answered atomic.Bool // the call runs confirmed (its media can move, mgwpool.go)
	finished atomic.Bool // finish ran: the call was ended, not abandoned
	drained  bool        // the drain ended it (only the call's goroutine touches it)
	// quality is the media_quality value last written (call_quality.go; only the call's
	// goroutine touches it).
	quality string
	// fenced is set when the call stops acting because its claim may pass to another
	// instance (lease.go); fenceCtx ends then, cutting the cleanups in progress.
	fenced    atomic.Bool
	fenceCtx  context.Context
	fenceStop context.CancelFunc
	// The pause (pause.go): act guards busy, the actions of the call in progress (a call
	// is paused only when there are none), and the writes of paused (the call waits for
	// a renewal to prove its claim) and unpaused (closed when a pause ends). mu may be
	// taken under act, never the reverse.
	act      sync.Mutex
	busy     int
	paused   atomic.Bool
	unpaused chan struct{}

	// unwatch ends the feed's watch of the player object: while the call lives, a write
	// made outside the commit path is adopted and reaches us as a resync. (The players
	// index is not watched: reconciling it rereads the whole index, and new players are
	// found by the keyspace wake-up and the rescan anyway.)
	unwatch func()

	mu     sync.Mutex // guards d, local, remote, answer, hold, lastAck, seDue, seNext
	d      dialog
	local  Local
	remote sdp.Remote
	answer []byte    // our last SDP (offer or answer), for refreshes
	hold   *store.Op // hold state to publish once our answer to a re-offer went out
	// localHold: our last re-INVITE held the call (call_hold.go); guarded by mu.
	localHold bool
	lastAck   *sip.Request // the ACK of our 2xx, resent on 2xx retransmissions
	seDue     time.Time    // when the session expires without a refresh (zero: no timer)
	seNext    time.Time    // when we refresh (we are the refresher; zero: not us)
}

// newCall makes the call of a player we claimed (cl) under Run's context ctx.
func (a *Adapter) newCall(ctx context.Context, cl claimed, dir Direction, callID string) *call {
	cctx, stop := context.WithCancel(ctx)
	fctx, fstop := context.WithCancel(context.Background())
	player := cl.player
	c := &call{
		a: a, player: player, dir: dir, seenAt: time.Now(), cl: cl,
		log:   a.log.With("player", player, "call_id", callID),
		wakeC: make(chan struct{}, 1), byeC: make(chan struct{}, 1),
		ackC: make(chan struct{}, 1), seC: make(chan struct{}, 1), moveC: make(chan string, 1),
		done: make(chan struct{}),
		ctx:  cctx, stop: stop,
		fenceCtx: fctx, fenceStop: fstop,
	}
	c.d.CallID = callID
	return c
}

// end runs last on the call's goroutine, ended or abandoned: the call leaves the
// adapter's tables, its helpers are stopped and waited for, and done is closed.
func (c *call) end() {
	c.stopFloor() // a call abandoned before its end was written still frees its floor port
	c.a.removeCall(c)
	if c.releaseEdge != nil {
		c.releaseEdge()
	}
	c.stop()
	c.helpers.stopAndWait()
	c.fenceStop() // releases the context; nothing of the call runs any more
	close(c.done)
}

// help runs f on a helper goroutine of the call (the call's context is f's).
func (c *call) help(f func(ctx context.Context)) {
	c.helpers.spawn(func() { f(c.ctx) })
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// poke tells the call its player object changed.
func (c *call) poke() { signal(c.wakeC) }

func (c *call) callID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.d.CallID
}

func (a *Adapter) callFor(player string) *call {
	a.cmu.Lock()
	defer a.cmu.Unlock()
	return a.calls[player]
}

// callsByID returns the live calls of a Call-ID. A gateway is a back-to-back agent for
// many users: a call from one of its users to another comes back through the CSCF with
// the caller's Call-ID, so our outgoing leg and the callee's incoming leg share it, and
// only their tags tell them apart.
func (a *Adapter) callsByID(callID string) []*call {
	a.cmu.Lock()
	defer a.cmu.Unlock()
	return slices.Clone(a.byID[callID])
}

// callByTag returns the live call of callID whose local tag is tag, or nil.
func (a *Adapter) callByTag(callID, tag string) *call {
	for _, c := range a.callsByID(callID) {
		c.mu.Lock()
		lt := c.d.LocalTag
		c.mu.Unlock()
		if lt != "" && lt == tag {
			return c
		}
	}
	return nil
}

// addCall registers a call; false if the player already has one here, we are full or
// draining.
func (a *Adapter) addCall(c *call) bool {
	a.cmu.Lock()
	defer a.cmu.Unlock()
	if _, ok := a.calls[c.player]; ok || len(a.calls) >= a.cfg.MaxCalls || a.draining.Load() {
		return false
	}
	a.calls[c.player] = c
	a.byID[c.d.CallID] = append(a.byID[c.d.CallID], c)
	c.unwatch = a.feed.Watch(c.player)
	a.met.calls.WithLabelValues(string(c.dir)).Inc()
	if !c.resumed {
		a.met.attempts.WithLabelValues(string(c.dir)).Inc()
	}
	return true
}

func (a *Adapter) removeCall(c *call) {
	a.cmu.Lock()
	if a.calls[c.player] == c {
		delete(a.calls, c.player)
		a.met.calls.WithLabelValues(string(c.dir)).Dec()
		c.unwatch()
	}
	for id, legs := range a.byID {
		legs = slices.DeleteFunc(legs, func(x *call) bool { return x == c })
		if len(legs) == 0 {
			delete(a.byID, id)
		} else {
			a.byID[id] = legs
		}
	}
	a.cmu.Unlock()
}

// commit writes ops to a player object as this instance.
func (a *Adapter) commit(ctx context.Context, player string, ops ...store.Op) error {
	_, err := a.st.Commit(ctx, store.Commit{Obj: player, Client: a.client, Base: -1, Ops: ops})
	if err != nil && !errors.Is(err, store.ErrExpectFailed) {
		a.met.dsmErrors.Inc()
	}
	return err
}

// finish ends the call: the termination is deleted, the final fields are written (only
// if the player still shows this call), the dialog record and the claim are dropped.
func (c *call) finish(res result, ops ...store.Op) {
	if !c.acting() {
		return // fenced: the termination is gone, the rest is the claim's next holder's
	}
	c.finished.Store(true)
	c.stopFloor()
	ctx, cancel := c.cleanupCtx()
	defer cancel()
	a := c.a
	c.mu.Lock()
	term, callID := c.d.Term, c.d.CallID
	c.mu.Unlock()
	if term != "" {
		if err := a.mgw.Delete(ctx, term); err != nil {
			a.met.mgwErrors.WithLabelValues("delete").Inc()
			c.log.Warn("delete termination failed", "term", term, "err", err)
		}
	}
	if len(ops) > 0 {
		all := append([]store.Op{store.Expect(a.f.callID, callID)}, ops...)
		all = append(all, store.Del(a.f.mgwURL), store.Del(a.f.progress))
		all = append(all, c.floorEndOps()...)
		if err := c.commit(ctx, all...); err != nil && !errors.Is(err, store.ErrExpectFailed) {
			c.log.Warn("write call result failed", "err", err)
		}
	}
	a.deleteDialog(ctx, c.player)
	a.release(ctx, c.cl)
	a.met.results.WithLabelValues(string(res)).Inc()
	c.log.Info("call ended", "result", string(res))
}

// failOps are the fields of a failed call: both states failed, the SIP status and reason.
func (a *Adapter) failOps(status int, reason string) []store.Op {
	ops := []store.Op{store.Set(a.f.mgwState, stateFailed), store.Set(a.f.playerState, stateFailed),
		store.Set(a.f.sipReason, reason)}
	if status > 0 {
		ops = append(ops, store.Set(a.f.sipStatus, strconv.Itoa(status)))
	} else {
		ops = append(ops, store.Del(a.f.sipStatus))
	}
	return ops
}

// endOps are the fields of a call that ended normally.
func (a *Adapter) endOps() []store.Op {
	return []store.Op{store.Set(a.f.mgwState, stateDisconnected), store.Set(a.f.playerState, stateDisconnected)}
}

// snapshot reads the call's player object; ok false when it was deleted or now shows
// another call.
func (c *call) snapshot(ctx context.Context) (map[string]string, bool) {
	r, err := c.a.st.Snapshot(ctx, c.player)
	if err != nil {
		c.a.met.dsmErrors.Inc()
		c.log.Warn("read player failed", "err", err)
		return nil, true // keep the call; the next wake-up retries
	}
	if len(r.Fields) == 0 || r.Fields[c.a.f.callID] != c.callID() {
		return r.Fields, false
	}
	return r.Fields, true
}

// wantsEnd reports whether the browser asked to end the call.
func (c *call) wantsEnd(fl map[string]string, ok bool) bool {
	if !ok {
		return true
	}
	s := fl[c.a.f.playerState]
	return s == stateDisconnected || s == stateFailed
}

// do sends a request of the call's dialog (from the call's identity: a challenge is
// answered with its user's credentials) and keeps the dialog's CSeq at or above the one
// the request went out with (an answered challenge takes the next).
func (c *call) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	c.mu.Lock()
	user := c.d.User
	c.mu.Unlock()
	res, err := c.a.do(ctx, user, req)
	c.mu.Lock()
	if n := req.CSeq().SeqNo; n > c.d.LocalCSeq {
		c.d.LocalCSeq = n
	}
	c.mu.Unlock()
	return res, err
}
