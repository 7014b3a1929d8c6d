package asadapter

import (
	"context"
	"errors"
	"time"

	"dsmgw/store"
)

// Fencing. A call is driven by the instance holding its claim, a lease in Redis that
// expires ClaimTTL after its last renewal; another instance takes a call whose claim
// expired and ends it (takeover.go). An instance that cannot renew (cut off from Redis,
// or paused) must therefore stop acting on the call before the claim can expire, or two
// instances would drive one dialog. It cannot ask Redis whether it still holds the claim,
// so it counts: a claim set or renewed by a request sent at t expires no earlier than
// t + ClaimTTL, and the call acts only until t + ClaimTTL - fenceMargin of its last
// successful request. Past that it is fenced: no SIP, no media, no commits for it; it is
// left as a crash leaves it, to the instance that takes the claim.
//
// A command sent to Redis just before the fence could still arrive after the claim
// expired, if the network held it: the gateway's Redis connections are closed with
// SO_LINGER 0 when a command times out (internal/gateway), which discards what the kernel
// still holds, and the margin exceeds the Redis client's read timeout (3 s).

// fenceMargin is how long before the claim can expire a call stops acting on it: 4 s of
// the default 10 s lease, above the Redis client's 3 s read timeout (see above) with room
// for scheduling delays.
func (a *Adapter) fenceMargin() time.Duration { return a.cfg.ClaimTTL * 2 / 5 }

// renewEvery is how often a live call renews its claim: a fifth of the lease, so a call
// outlives two failed renewals (a Redis hiccup of about 4 s) before it is fenced.
func (a *Adapter) renewEvery() time.Duration { return a.cfg.ClaimTTL / 5 }

// leaseFrom returns until when a claim set or renewed by a request sent at sent may be
// acted on.
func (a *Adapter) leaseFrom(sent time.Time) time.Time {
	return sent.Add(a.cfg.ClaimTTL - a.fenceMargin())
}

// keepLease renews the call's claim every renewEvery and fences the call when its lease
// runs out or another instance holds the claim. It runs as a helper of the call from the
// claim on; until is the lease of the claim itself.
func (c *call) keepLease(ctx context.Context, until time.Time) {
	a := c.a
	tick := time.NewTicker(a.renewEvery())
	defer tick.Stop()
	fence := time.NewTimer(time.Until(until))
	defer fence.Stop()
	type renewal struct {
		sent time.Time
		err  error
	}
	// One renewal at a time: a request held by a dead network returns only at the Redis
	// client's timeout, and the fence timer does not wait for it.
	results := make(chan renewal, 1)
	busy := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if busy {
				continue
			}
			busy = true
			sent := time.Now()
			c.help(func(ctx context.Context) {
				results <- renewal{sent: sent, err: a.renew(ctx, c.player)}
			})
		case r := <-results:
			busy = false
			switch {
			case r.err == nil:
				if next := a.leaseFrom(r.sent); next.After(until) {
					until = next
					fence.Reset(time.Until(until))
				}
			case errors.Is(r.err, ErrClaimLost):
				c.fence("claim taken by another instance")
				return
			default:
				c.log.Warn("renew claim failed", "err", r.err, "fenced_in", time.Until(until).Round(time.Millisecond))
			}
		case <-fence.C:
			c.fence("claim not renewed in time: another instance may take the call")
			return
		}
	}
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
	c.a.met.fenced.Inc()
	c.log.Warn("fenced: no longer acting on the call", "why", why)
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

// acting reports whether the call may still act (it is not fenced).
func (c *call) acting() bool { return !c.fenced.Load() }

// commit writes ops to the call's player object, unless the call is fenced.
func (c *call) commit(ctx context.Context, ops ...store.Op) error {
	if !c.acting() {
		return ErrFenced
	}
	return c.a.commit(ctx, c.player, ops...)
}

// cleanupCtx is the adapter's cleanup context (drain.go), also ended when the call is
// fenced: a BYE or a write in progress stops there.
func (c *call) cleanupCtx() (context.Context, context.CancelFunc) {
	ctx, cancel := c.a.cleanupCtx()
	stop := context.AfterFunc(c.fenceCtx, cancel)
	return ctx, func() { stop(); cancel() }
}
