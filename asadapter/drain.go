package asadapter

import (
	"context"
	"time"

	"dsmgw/store"
)

// Graceful drain, the first stage of a two-stage shutdown (SIGTERM drains, SIGINT or the
// end of Run's context stops at once): HangupAll ends every call this instance owns the
// way a user hanging up would, so no peer is left with a dead dialog and no browser waits
// for a takeover's lease to expire.

// reasonShutdown is the sip_reason written to players whose call the drain ended.
const reasonShutdown = "gateway shutting down"

// HangupAll ends every live call this instance owns: BYE after the answer, CANCEL before
// it (after a provisional response, as RFC 3261 section 9.1 asks), 480 to incoming calls
// still ringing. Each call's termination is deleted, its player written `disconnected`
// with sip_reason "gateway shutting down", and its claim and dialog record released. From
// the first call on, the instance starts no new call and takes none over: new INVITEs get
// 503 and players asking for a call are left to the other instances.
//
// It waits for the calls' transactions until they are done or ctx ends (ctx's deadline
// also bounds each call's cleanup), and returns how many calls it ended; calls left when
// ctx ends are abandoned as Run's end abandons them, for a takeover. Run keeps serving
// SIP meanwhile (BYE answers and CANCEL's 487 arrive on its listeners), so call it before
// ending Run's context. Calling it again waits for the remaining calls again.
func (a *Adapter) HangupAll(ctx context.Context) int {
	a.drainCtx.Store(&ctx)
	a.cmu.Lock()
	a.draining.Store(true) // under cmu: addCall refuses every call we do not list here
	cs := make([]*call, 0, len(a.calls))
	for _, c := range a.calls {
		cs = append(cs, c)
	}
	a.cmu.Unlock()
	a.drainOnce.Do(func() { close(a.drainC) })
	start := time.Now()
	a.log.Info("draining: hanging up calls", "calls", len(cs))
	n := 0
	for i, c := range cs {
		select {
		case <-c.done:
			if c.finished.Load() {
				n++
			}
		case <-ctx.Done():
			// Which calls, so that a drain held to its deadline says what held it.
			var left []string
			for _, c := range cs[i:] {
				select {
				case <-c.done:
				default:
					left = append(left, c.player+" "+c.callID())
				}
			}
			a.log.Warn("drain deadline passed; the calls left go to a takeover",
				"ended", n, "left", len(left), "calls", left, "err", ctx.Err())
			return n
		}
	}
	a.log.Info("drained", "ended", n, "took", time.Since(start))
	return n
}

// StopTaking is the first step of a graceful shutdown: from now on this instance claims
// no new outgoing call and takes no call over (the instances that stay do), while its
// calls go on and incoming INVITEs are still answered (the users side may be handing its
// registrations over: until the new holder's REGISTER, calls for them arrive here).
func (a *Adapter) StopTaking() { a.quiescing.Store(true) }

// takingNew reports whether the instance starts new calls and takes calls over.
func (a *Adapter) takingNew() bool { return !a.draining.Load() && !a.quiescing.Load() }

// waitCallsPoll is how often WaitCalls looks at the calls left: a call ends in
// milliseconds once its peer hangs up, and the drain's figure needs no finer grain.
const waitCallsPoll = 50 * time.Millisecond

// WaitCalls waits until this instance owns no call, or ctx ends, and returns how many are
// left: on a graceful shutdown the calls may end on their own before the rest are hung up.
func (a *Adapter) WaitCalls(ctx context.Context) int {
	t := time.NewTicker(waitCallsPoll)
	defer t.Stop()
	for {
		a.cmu.Lock()
		n := len(a.calls)
		a.cmu.Unlock()
		if n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// Draining reports whether HangupAll was called.
func (a *Adapter) Draining() bool { return a.draining.Load() }

// shutdownOps are the fields of a call the drain ended.
func (a *Adapter) shutdownOps() []store.Op {
	return append(a.endOps(), store.Set(a.f.sipReason, reasonShutdown), store.Del(a.f.sipStatus))
}

// cleanupCtx is the context for ending a call: detached from the cancellation of Run's
// context so that a hangup in progress completes, bounded by cleanupTimeout and, while
// draining, by the drain's deadline. (Run still waits for whoever uses it.)
func (a *Adapter) cleanupCtx() (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(a.runContext())
	if p := a.drainCtx.Load(); p != nil {
		base = *p
	}
	return context.WithTimeout(base, cleanupTimeout)
}
