package asadapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"dsmgw/store"
)

// Fencing. A call is driven by the instance holding its claim, a lease in Redis that
// expires ClaimTTL after its last renewal; another instance takes a call whose claim
// expired and continues it (takeover.go). An instance that cannot renew (cut off from
// Redis, or paused) must therefore stop acting on the call before the claim can expire, or
// two instances would drive one dialog. It cannot ask Redis whether it still holds the
// claim, so it counts: a claim set or renewed by a request sent at t expires no earlier
// than t + ClaimTTL, and the call acts only until t + ClaimTTL - fenceMargin of its last
// successful request. Past that it is fenced: no SIP, no media, no commits for it; it is
// left as a crash leaves it, to the instance that takes the claim.
//
// A request held by the network and delivered late cannot undo that: a renewal names the
// claim's generation ("<instance>/<gen>", records.go), so a late one finds another value
// and does nothing; and every commit about the call expects the generation in the
// player's claim_gen field, which the next owner rewrites before anything else, so a late
// commit is refused. The margin therefore only covers what happens on the instance
// itself: a fence timer that fires late on a loaded machine, a request already past its
// check when the fence falls.

// fenceMargin is how long before the claim can expire a call stops acting on it: a
// quarter of the lease (250 ms of the default second), far above a timer's lateness on a
// loaded machine, and it leaves the call half the lease (two renewals) to get a renewal
// through before it is fenced.
func (a *Adapter) fenceMargin() time.Duration { return a.cfg.ClaimTTL / 4 }

// renewEvery is how often a live call renews its claim: a quarter of the lease, so a call
// survives one lost or slow renewal: it is fenced only when no renewal sent in the last
// half lease was answered.
func (a *Adapter) renewEvery() time.Duration { return a.cfg.ClaimTTL / 4 }

// leaseFrom returns until when a claim set or renewed by a request sent at sent may be
// acted on.
func (a *Adapter) leaseFrom(sent time.Time) time.Time {
	return sent.Add(a.cfg.ClaimTTL - a.fenceMargin())
}

// keepLease follows the renewals of the call's claim (the instance renews every claim it
// holds together, lease_renew.go); when its lease runs short it pauses the call (or
// fences it, when it cannot be paused, pause.go), resumes a paused call once a renewal
// proves the claim still ours, and fences it when another instance holds the claim. It
// runs as a helper of the call from the claim on.
func (c *call) keepLease(ctx context.Context) {
	a := c.a
	results := a.renewers.add(c)
	defer a.renewers.remove(c)
	until := a.leaseFrom(c.cl.at)
	fence := time.NewTimer(time.Until(until))
	defer fence.Stop()
	giveUp := time.NewTimer(time.Hour) // a pause that lasted pauseLimit
	giveUp.Stop()
	defer giveUp.Stop()
	var pausedAt time.Time // zero while the call acts
	var last time.Time     // when the last renewal answered was sent
	// answered takes a renewal's answer; false when the call was fenced.
	answered := func(r renewal) bool {
		last = r.sent
		switch {
		case r.err == nil:
			if r.restored {
				c.log.Info("claim had lapsed and nobody had taken it; restored", "paused", !pausedAt.IsZero())
			}
			next := a.leaseFrom(r.sent)
			if !next.After(time.Now()) {
				// The claim was ours when Redis ran the renewal, which says nothing
				// of now: a paused call asks again at once.
				if !pausedAt.IsZero() {
					a.renewers.hurry()
				}
				return true
			}
			if next.After(until) {
				until = next
				fence.Reset(time.Until(until))
			}
			if !pausedAt.IsZero() {
				giveUp.Stop()
				if !c.resume(pausedAt) {
					c.fence("the termination could not be restored after a pause")
					return false
				}
				pausedAt = time.Time{}
			}
		case errors.Is(r.err, ErrClaimLost):
			c.fence("claim taken by another instance")
			return false
		default:
			c.log.Warn("renew claim failed", "err", r.err, "fenced_in", time.Until(until).Round(time.Millisecond),
				"paused", !pausedAt.IsZero())
		}
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-results:
			if !answered(r) {
				return
			}
		case <-fence.C:
			// A process that was not scheduled for a while finds the fence timer and a
			// renewal's answer ready at once, and select picks either: the answer counts
			// first, if it came.
			select {
			case r := <-results:
				if !answered(r) {
					return
				}
				if until.After(time.Now()) {
					continue
				}
			default:
			}
			if !pausedAt.IsZero() {
				// Not expected: a paused call's fence timer has fired, and is re-armed
				// only together with its resume.
				continue
			}
			why := fmt.Sprintf("claim not renewed in time (lease ran out %s ago; last renewal answered sent %s ago)",
				time.Since(until).Round(time.Millisecond), sinceOrNever(last))
			if !c.pause(why) {
				c.fence(why + ": another instance may take the call")
				return
			}
			pausedAt = time.Now()
			giveUp.Reset(a.pauseLimit())
			a.renewers.hurry()
		case <-giveUp.C:
			select { // as above: an answer that came meanwhile counts first
			case r := <-results:
				if !answered(r) {
					return
				}
				if pausedAt.IsZero() {
					continue
				}
			default:
			}
			c.fence(fmt.Sprintf("no renewal proved the claim ours in the %s of a pause: another instance may take the call",
				a.pauseLimit()))
			return
		}
	}
}

// sinceOrNever is how long ago t was, for logs ("never" for the zero time).
func sinceOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Millisecond).String()
}

// fence stops the call acting: from now on it sends no SIP, relays no media and commits
// nothing; its goroutine abandons the call as on a crash, and its termination is removed
// so no media flows. The instance that takes the claim ends the call (takeover.go). Safe
// to call twice.
func (c *call) fence(why string) {
	if !c.fenced.CompareAndSwap(false, true) {
		return
	}
	c.fenceStop() // cuts cleanups in progress (a BYE's retransmissions, a commit)
	c.unpause()   // actions waiting for a pause to end give up
	c.a.met.fenced.Inc()
	c.log.Warn("fenced: no longer acting on the call", "why", why)
	// Whoever takes the claim takes the call; this instance may be the one, once it
	// reaches Redis again.
	c.a.leases.watch(c.player, time.Now().Add(c.a.cfg.ClaimTTL))
	c.stop() // the call's goroutine and helpers see their context end
	c.mu.Lock()
	term := c.d.Term
	c.mu.Unlock()
	if term != "" {
		// The local media gateway, not Redis: reachable when Redis is not.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(c.a.runContext()), cleanupTimeout)
		defer cancel()
		if err := c.a.mgw.Delete(ctx, term); err != nil {
			c.log.Warn("fenced: delete termination failed", "term", term, "err", err)
		}
	}
}

// acting reports whether the call may act now: it is neither fenced nor paused.
func (c *call) acting() bool { return !c.fenced.Load() && !c.paused.Load() }

// commit writes ops to the call's player object, unless the call is fenced or paused, and only
// while the player's claim_gen is the generation of our claim: a commit of an owner that
// lost the call is refused (ErrExpectFailed) even when it reaches Redis late.
func (c *call) commit(ctx context.Context, ops ...store.Op) error {
	if !c.acting() {
		return ErrFenced
	}
	all := make([]store.Op, 0, len(ops)+1)
	all = append(all, store.Expect(c.a.f.claimGen, c.cl.genString()))
	return c.a.commit(ctx, c.player, append(all, ops...)...)
}

// commitClaiming is the call's first commit: it writes our claim's generation into the
// player (over the last owner's) with ops, whose expects decide whether it lands.
func (c *call) commitClaiming(ctx context.Context, ops ...store.Op) error {
	if !c.acting() {
		return ErrFenced
	}
	return c.a.commit(ctx, c.player, append(ops, store.Set(c.a.f.claimGen, c.cl.genString()))...)
}

// cleanupCtx is the adapter's cleanup context (drain.go), also ended when the call is
// fenced: a BYE or a write in progress stops there.
func (c *call) cleanupCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := c.a.cleanupCtx()
	stop := context.AfterFunc(c.fenceCtx, cancel)
	return ctx, func() { stop(); cancel() }
}
