package asadapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// Moving a call's media: a new termination on a media gateway and a re-INVITE in the same
// dialog (RFC 3261 section 14) that points the far end at it. It is what an instance
// that takes a call over does (resume, from takeover.go), and what the owner does when
// the media gateway instance holding the call's termination is lost (mgwpool.go).
//
// The re-INVITE is an ordinary one: same Call-ID and tags, the dialog's route set, our
// Contact as a target refresh (RFC 3261 section 12.2: the far end's later requests come
// to the instance that sends it), and an offer in the same SDP session (the o= line of
// the session with the next version, RFC 3264 section 8) with our media address and
// the codecs the session negotiated. On 2xx the media gateway is told the far end's
// (possibly new) address, and the media URL goes to the player in one commit; the page
// sees a new mgw_url and attaches its media to it. The far end sees a new SSRC on the
// stream, which the new description allows (RFC 3550 section 8: a new source).

// takeoverCSeqStep is how far above the stored CSeq a takeover's first request goes: the
// lost instance may have sent requests after it last stored the dialog (INFO digits are
// not stored one by one), and a far end answers a CSeq at or below one it saw with 500
// (RFC 3261 section 12.2.2).
const takeoverCSeqStep = 1000

// glareRetries bounds the re-INVITEs answered 491 (the far end's own re-INVITE crossed
// ours) or 500 with Retry-After (the lost instance's re-INVITE still pending there,
// call_resume_pending.go): with the waits of RFC 3261 section 14 (up to 4 s, or 10 s,
// each) they cover a far end's re-INVITE transaction that waits for the lost instance
// until it times out (32 s).
const glareRetries = 10

// glareWait is how long to wait before retrying a re-INVITE answered 491 (RFC 3261
// section 14.1): 2.1 to 4 s for the owner of the Call-ID (the side that placed the call),
// 0 to 2 s for the other, in units of 10 ms.
func glareWait(owner bool) time.Duration {
	if owner {
		return time.Duration(210+rand.IntN(191)) * 10 * time.Millisecond
	}
	return time.Duration(rand.IntN(201)) * 10 * time.Millisecond
}

// resume continues the call of a lost instance here: the call is rebuilt from its dialog
// record under our claim cl (whose generation replaces the lost owner's in the player),
// and its goroutine moves the media here (runResumed). done gives back the takeover's
// slot (takeover_sched.go) once the media moved, or the takeover was given up.
func (a *Adapter) resume(ctx context.Context, cl claimed, d *dialog, fl map[string]string, done func()) {
	log := a.log.With("player", cl.player, "call_id", d.CallID, "owner", d.Owner)
	c := a.newCall(a.runContext(), cl, d.Dir, d.CallID)
	c.d = *d
	c.d.Owner = a.cfg.Instance
	c.d.LocalCSeq += takeoverCSeqStep
	c.svc = serviceOfDialog(d)
	c.resumed = true
	// Our Contact from now on: the user's registration if this instance holds it, else a
	// contact of ours with the user's name (the lost instance's registered contact would
	// bring the far end's requests back to it).
	c.d.Contact = ""
	if b, held, _ := a.bindingOf(ctx, d.User); held {
		c.d.Contact = b.Contact.String()
	}
	if d.Media != nil {
		c.remote = *d.Media
	}
	// The hold the page asked for, not the one the lost instance last had answered: its
	// hold (or resume) re-INVITE may have been in flight when it was lost, and the
	// survivor's re-offer carries the direction the page wants (call_resume_pending.go).
	c.localHold = fl[a.f.holdIntent] == holdIntentHold
	if !a.addCall(c) {
		c.end()
		a.yield(ctx, cl)
		done()
		return
	}
	// The first commit: our generation in place of the lost owner's, on the same call.
	err := c.commitClaiming(ctx, store.Expect(a.f.callID, d.CallID), a.expectGen(fl))
	if err != nil {
		// The player changed meanwhile (another instance, or the browser): its next
		// wake-up brings it back here.
		log.Info("takeover: player changed before the claim was written; giving it up", "err", err)
		c.end()
		a.yield(ctx, cl)
		done()
		return
	}
	log.Info("taking over the call of a lost instance", "generation", cl.gen, "dir", string(d.Dir))
	c.help(c.keepLease)
	if !a.own.spawn(func() { c.runResumed(c.ctx, done) }) {
		c.end() // Run is ending: abandoned again, for the next takeover
		done()
	}
}

// runResumed is the goroutine of a call taken over: the media moves here, then the call
// goes on as any confirmed call.
func (c *call) runResumed(ctx context.Context, done func()) {
	defer c.end()
	moving := true
	defer func() {
		if moving {
			done()
		}
	}()
	a := c.a
	// The lost instance's re-INVITE (hold, resume, a session refresh) may have been
	// answered to it: acknowledge it now, and again once ours was answered (see
	// ackLostReinvite), or the far end would retransmit its 2xx and end the dialog.
	lost := c.lastAckFromRecord()
	c.ackLostReinvite(lost)
	if fl, ok := c.snapshot(ctx); c.wantsEnd(fl, ok) {
		c.log.Info("browser hung up while the call was taken over")
		c.bye()
		c.finish(resultLocalBye, store.Set(a.f.mgwState, stateDisconnected))
		return
	}
	if !c.reanchor(ctx, reasonInstanceLost) {
		return
	}
	c.ackLostReinvite(lost)
	moving = false
	done() // the media moved: the next takeover may start
	a.met.takeovers.WithLabelValues("continued").Inc()
	c.confirmed(ctx)
}

// reanchor moves the call's media to a new termination (see the top of the file); why is
// what the player shows if the far end refuses. It reports false when the call ended
// instead (after a BYE and the player's failure, written by finish).
func (c *call) reanchor(ctx context.Context, why string) bool {
	a := c.a
	var reopened bool
	if c.ptt != nil || c.svc == "poc" {
		// A new floor channel beside the new termination (the old one's port is gone
		// with its instance): the floor starts idle, a page that held it presses again.
		c.stopFloor()
		if err := c.openFloor(); err != nil {
			c.log.Warn("no floor channel for the moved call", "err", err)
			c.bye()
			c.finish(resultError, a.failOps(503, why+": "+err.Error())...)
			return false
		}
		reopened = true
	}
	local, err := a.mgw.AddLocal(ctx, LocalRequest{Player: c.player, CallID: c.callID(), Gated: c.ptt != nil})
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		a.met.mgwErrors.WithLabelValues("add_local").Inc()
		c.log.Warn("add local termination for the moved call failed", "err", err)
		c.bye()
		c.finish(resultMGWError, a.failOps(0, why+": media gateway: "+err.Error())...)
		return false
	}
	drop := func() {
		dctx, cancel := c.cleanupCtx()
		defer cancel()
		_ = a.mgw.Delete(dctx, local.ID)
	}
	res, offer, err := c.moveOffer(ctx, local)
	if err != nil || !res.IsSuccess() {
		drop()
		if ctx.Err() != nil || !c.acting() {
			return false
		}
		status, reason := 408, "Request Timeout"
		var se *SIPError
		switch {
		case errors.As(err, &se):
			status, reason = se.Status, se.Reason
		case err == nil:
			status, reason = res.StatusCode, res.Reason
		}
		c.log.Warn("re-INVITE to move the media refused; hanging up", "status", status, "reason", reason, "err", err)
		if status != 481 && status != 408 {
			c.bye() // 481 and 408 end the dialog by themselves (RFC 3261 section 12.2.1.2)
		}
		if d, ok := c.unacked(); ok {
			// The caller may never have had the 200 (call_in_unacked.go): its INVITE
			// gets a final answer, and the player shows what a ringing call's would.
			a.refuseRinging(a.runContext(), &d, c.log)
			c.finish(resultReinviteRefused, a.failOps(480, why)...)
			return false
		}
		c.finish(resultReinviteRefused, a.failOps(status, fmt.Sprintf("%s; re-INVITE refused: %d %s", why, status, reason))...)
		return false
	}
	if err := c.moved(ctx, local, res, offer); err != nil {
		drop()
		if ctx.Err() != nil || !c.acting() {
			return false
		}
		c.log.Warn("moving the media failed; hanging up", "err", err)
		c.bye()
		c.finish(resultBadSDP, a.failOps(488, why+": "+err.Error())...)
		return false
	}
	if reopened {
		c.startFloor()
	}
	return true
}

// moveOffer sends the re-INVITE that offers local, retrying on 491 (RFC 3261 section
// 14.1) and on 500 with Retry-After (section 14.2), and ACKs its 2xx. The offer is
// sendonly while the page holds the call. It returns the final response (a non-2xx too) and our offer.
//
// The offer is the session's next version (RFC 3264 section 8: the o= line of our last
// description, its version one above), once: an offer answered 491 changed nothing, so
// its retry is the same description, still one above the last the far end accepted.
func (c *call) moveOffer(ctx context.Context, local Local) (*sip.Response, []byte, error) {
	a := c.a
	c.mu.Lock()
	c.d.Origin.Version++
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		var media sdp.Remote
		if c.d.Media != nil {
			media = *c.d.Media
		}
		dir := sdp.SendRecv
		if c.localHold {
			dir = sdp.SendOnly // the page holds the call: the moved media stays held
		}
		offer := c.withFloor(sdp.Reoffer(c.d.Origin, a.cfg.User, local.Addr, local.Port, media, dir), false)
		req, err := a.request(&c.d, sip.INVITE, offer, "application/sdp")
		if err == nil {
			if c.d.SessionExpires > 0 {
				// The re-INVITE refreshes the session too (RFC 4028 section 7.4); the
				// refresher stays who it was.
				ref := "uas"
				if c.weRefresh() {
					ref = "uac"
				}
				req.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=%s", c.d.SessionExpires, ref)))
			}
			req.AppendHeader(sip.NewHeader("Supported", "timer"))
			req.AppendHeader(sip.NewHeader("Allow", allowMethods))
			c.d.ReinviteCSeq = c.d.LocalCSeq
		}
		d := c.d
		c.mu.Unlock()
		if err != nil {
			return nil, nil, err
		}
		sctx, cancel := c.cleanupCtx()
		if err := a.saveDialog(sctx, &d); err != nil {
			c.log.Warn("save dialog failed", "err", err)
		}
		cancel()
		rctx, cancel := context.WithTimeout(ctx, cancelWait)
		res, err := c.do(rctx, req)
		cancel()
		if err != nil || !res.IsSuccess() {
			c.mu.Lock()
			c.d.ReinviteCSeq = 0 // no 2xx to acknowledge
			c.mu.Unlock()
		}
		if err != nil {
			return nil, nil, err
		}
		if wait, ok := retryWait(res, c.dir == DirOut); ok && attempt < glareRetries {
			c.log.Info("re-INVITE met a transaction in progress at the far end; retrying",
				"status", res.StatusCode, "after", wait)
			select {
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			case <-time.After(wait):
			}
			continue
		}
		if !res.IsSuccess() {
			return res, offer, nil
		}
		c.mu.Lock()
		ack, err := a.requestWithCSeq(&c.d, sip.ACK, req.CSeq().SeqNo, nil, "")
		c.d.ReinviteCSeq = 0
		if t := contactTarget(res); t != "" && err == nil {
			c.d.Target = t // a target refresh (RFC 3261 section 12.2.1.2)
		}
		c.mu.Unlock()
		if err != nil {
			return nil, nil, fmt.Errorf("build ACK: %w", err)
		}
		if err := a.cli.WriteRequest(ack, prebuilt); err != nil {
			c.log.Warn("send ACK failed", "err", err)
		}
		c.mu.Lock()
		c.lastAck = ack
		c.mu.Unlock()
		return res, offer, nil
	}
}

// moved applies the 2xx of the re-INVITE: the media gateway learns the far end's media,
// the player gets the new media URL (and the hold state the answer shows) in one commit,
// the dialog record the new termination, and the old termination is removed.
func (c *call) moved(ctx context.Context, local Local, res *sip.Response, offer []byte) error {
	a := c.a
	ans, err := sdp.Parse(res.Body())
	var remote sdp.Remote
	if err == nil {
		remote, err = sdp.NegotiateAnswer(ans)
	}
	if err == nil {
		_, err = c.floorAnswer(res.Body())
	}
	if err != nil {
		return fmt.Errorf("unusable SDP answer: %w", err)
	}
	url, err := a.mgw.AddRemote(ctx, local.ID, remote)
	if err != nil {
		a.met.mgwErrors.WithLabelValues("add_remote").Inc()
		return fmt.Errorf("media gateway: %w", err)
	}
	c.mu.Lock()
	// What the page sees is its own hold first (our offer was sendonly, the answer's
	// recvonly reads as held from the far end too), then the far end's.
	hold := store.Del(a.f.hold)
	switch {
	case c.localHold:
		hold = store.Set(a.f.hold, holdLocal)
	case remote.Held():
		hold = store.Set(a.f.hold, holdRemote)
	}
	old := c.d.Term
	c.local, c.remote, c.answer = local, remote, offer
	c.d.Term, c.d.Media = local.ID, &remote
	c.sessionTimerFromReinvite(res)
	// A 2xx from the far end proves it holds the dialog: an incoming INVITE whose ACK
	// the lost instance never saw was answered after all (call_in_unacked.go).
	c.d.InviteVias, c.d.InviteSource, c.d.InviteTransport = nil, "", ""
	d := c.d
	c.mu.Unlock()
	if err := c.commit(ctx, store.Expect(a.f.callID, d.CallID), store.Set(a.f.mgwURL, url),
		store.Set(a.f.mgwState, stateConnected), hold); err != nil {
		return fmt.Errorf("write the new media URL: %w", err)
	}
	if err := a.saveDialog(ctx, &d); err != nil {
		c.log.Warn("save dialog failed", "err", err)
	}
	if old != "" && old != local.ID {
		dctx, cancel := c.cleanupCtx()
		if err := a.mgw.Delete(dctx, old); err != nil {
			c.log.Debug("delete the old termination failed (its media gateway is gone)", "term", old, "err", err)
		}
		cancel()
	}
	c.log.Info("media moved here", "term", local.ID, "remote_rtp", fmt.Sprintf("%s:%d", remote.Addr, remote.Port),
		"held", remote.Held())
	return nil
}
