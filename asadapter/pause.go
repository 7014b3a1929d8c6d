package asadapter

import (
	"context"
	"time"

	"dsmgw/asadapter/sdp"
)

// Pausing. A call whose lease ran short (no renewal answered for three quarters of it,
// lease.go) must stop acting before its claim can expire, but most such calls are not
// lost: their process was not scheduled for a while (a busy CPU), or Redis answered late,
// and the renewal already sent, or the next one, still finds the claim ours. So an idle
// answered call is paused instead of fenced: it sends no SIP, commits nothing and its
// termination stops relaying the page's media to the far end, but it keeps its claim and
// goes on renewing. A renewal that succeeds on the claim's own generation proves that no
// other instance took the call (a claim is taken only once its key is gone, and a renewal
// extends a key that still holds our value, which only we can write, see records.go), so
// the call resumes where it stopped, without a word to the far end. A renewal that finds
// the claim taken by another instance fences the call for good (a claim that lapsed
// and nobody took since is restored by the renewal, lease_renew.go), as does a pause
// that no renewal ends within pauseLimit (Redis unreachable): the call is left to
// whoever takes it.
//
// A pause must not cut an action in the middle (a re-INVITE half done, a commit in
// flight), so every action of an answered call runs between enter and leave, and a call
// is paused only when none is running; otherwise it is fenced for good, as a crash would
// leave it. Actions that start during a pause wait in enter until it ends.

// pauseLimit is how long a pause waits for a renewal to prove the claim ours before the
// call is fenced for good: two leases. The claim may have expired in Redis well before,
// but a renewal that comes back later still restores it if nobody took it since
// (lease_renew.go), and on a starved CPU (or with Redis stalled on it) that answer comes
// only once the process runs again; one lease ended such pauses in a fence just before
// the answer that would have resumed them. How long a pause lasts does not enter the
// restore's argument: generations are never drawn twice (claimScript).
func (a *Adapter) pauseLimit() time.Duration { return 2 * a.cfg.ClaimTTL }

// enter starts an action of the call: it waits while the call is paused and returns
// false (nothing may be done) once the call is fenced or ctx ends. A true enter must be
// matched by leave.
func (c *call) enter(ctx context.Context) bool {
	c.act.Lock()
	for c.paused.Load() {
		ch := c.unpaused
		c.act.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
		c.act.Lock()
	}
	defer c.act.Unlock()
	if c.fenced.Load() {
		return false
	}
	c.busy++
	return true
}

// tryEnter is enter without waiting: false while the call is paused. For actions that
// are better skipped than late (an ACK resent for a retransmitted 2xx: the far end sends
// the 2xx again).
func (c *call) tryEnter() bool {
	c.act.Lock()
	defer c.act.Unlock()
	if c.paused.Load() || c.fenced.Load() {
		return false
	}
	c.busy++
	return true
}

// leave ends what enter started.
func (c *call) leave() {
	c.act.Lock()
	c.busy--
	c.act.Unlock()
}

// pause stops an idle answered call acting while its lease is in doubt; false when the
// call cannot be paused (not answered yet, an action in progress, a push-to-talk call
// whose floor channel runs on its own, or its termination could not be muted) and must be
// fenced instead.
func (c *call) pause(why string) bool {
	c.act.Lock()
	// Read under act (mu nests inside it): no action runs now, and none starts once
	// paused is set, so the termination and the media are the call's last.
	c.mu.Lock()
	ptt, term, remote := c.ptt != nil, c.d.Term, c.remote
	c.mu.Unlock()
	if c.fenced.Load() || c.busy > 0 || !c.answered.Load() || ptt || term == "" {
		c.act.Unlock()
		return false
	}
	c.paused.Store(true)
	c.unpaused = make(chan struct{})
	c.act.Unlock()
	// The page's media must stop reaching the far end too: once the claim passes, the
	// far end is moved to another instance's termination and must not hear two. The far
	// end's media still reaches the page (nothing else sends it there). A media gateway
	// slow to answer on a busy machine is waited for as a fence's delete would be: the
	// far end moves only after the claim expired and a re-INVITE went through.
	muted := remote
	muted.Direction = sdp.Inactive
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.a.runContext()), cleanupTimeout)
	defer cancel()
	if err := c.a.mgw.Modify(ctx, term, muted); err != nil {
		c.a.met.mgwErrors.WithLabelValues("modify").Inc()
		c.log.Warn("pause: mute termination failed", "term", term, "err", err)
		return false // fence clears the pause
	}
	c.a.met.pauses.WithLabelValues("paused").Inc()
	c.log.Warn("paused: not acting on the call until a renewal proves the claim ours", "why", why)
	return true
}

// resume ends a pause once a renewal proved the claim still ours: the termination relays
// as before and the actions that waited go on. False when the termination could not be
// restored (the call is then fenced).
func (c *call) resume(since time.Time) bool {
	c.mu.Lock()
	term, remote := c.d.Term, c.remote
	c.mu.Unlock()
	// Still paused while the media is restored: no action of the call can change the
	// termination meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.a.runContext()), cleanupTimeout)
	defer cancel()
	if err := c.a.mgw.Modify(ctx, term, remote); err != nil {
		c.a.met.mgwErrors.WithLabelValues("modify").Inc()
		c.log.Warn("resume: restore termination failed", "term", term, "err", err)
		return false
	}
	c.act.Lock()
	c.paused.Store(false)
	close(c.unpaused)
	c.act.Unlock()
	c.a.met.pauses.WithLabelValues("resumed").Inc()
	c.log.Info("resumed: the claim is still ours", "paused_for", time.Since(since).Round(time.Millisecond))
	return true
}

// unpause ends a pause because the call is fenced (fence calls it): the actions waiting
// in enter see the fence and give up.
func (c *call) unpause() {
	c.act.Lock()
	defer c.act.Unlock()
	if c.paused.Load() {
		c.paused.Store(false)
		close(c.unpaused)
		c.a.met.pauses.WithLabelValues("fenced").Inc()
	}
}
