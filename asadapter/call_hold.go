package asadapter

import (
	"context"
	"fmt"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// Hold at the page's request (RFC 3264 section 8.4, RFC 6337 section 5.3): the page writes
// hold_intent "hold" (and deletes it to resume); the call re-INVITEs with its negotiated
// codecs and a=sendonly (a=sendrecv to resume) and, once the far end answered 2xx, writes
// hold "local" (or deletes it). The page shows what hold says, not what it asked for: a
// refused re-INVITE leaves the call as it was. The page stops sending its microphone
// itself while held; the far end stops sending because of the SDP.

// holdIntent re-INVITEs when the page's hold_intent differs from our last hold, from the
// confirmed call's loop (so never across another of our re-INVITEs).
func (c *call) holdIntent(ctx context.Context, fl map[string]string) {
	a := c.a
	want := fl[a.f.holdIntent] == holdIntentHold
	c.mu.Lock()
	on := c.localHold
	c.mu.Unlock()
	if want == on {
		return
	}
	dir := sdp.SendRecv
	if want {
		dir = sdp.SendOnly
	}
	if err := c.reinviteDirection(ctx, dir); err != nil {
		// The call goes on as it was; the page still sees the old hold state.
		c.log.Warn("hold re-INVITE failed", "hold", want, "err", err)
		return
	}
	c.mu.Lock()
	c.localHold = want
	remoteHeld := c.remote.Held()
	c.mu.Unlock()
	op := store.Del(a.f.hold)
	switch {
	case want:
		op = store.Set(a.f.hold, holdLocal)
	case remoteHeld:
		op = store.Set(a.f.hold, holdRemote)
	}
	c.log.Info("call held by the page", "hold", want)
	if err := c.commit(ctx, store.Expect(a.f.callID, c.callID()), op); err != nil {
		c.log.Debug("write hold failed", "err", err)
	}
}

// reinviteDirection sends a re-INVITE offering our media with direction dir and the
// codecs the call negotiated, and ACKs its 2xx; the offer becomes our current description
// (what a session refresh sends again).
func (c *call) reinviteDirection(ctx context.Context, dir sdp.Direction) error {
	a := c.a
	if !c.acting() {
		return ErrFenced
	}
	c.mu.Lock()
	c.d.Origin.Version++
	offer := c.withFloor(sdp.Reoffer(c.d.Origin, a.cfg.User, c.local.Addr, c.local.Port, c.remote, dir), false)
	req, err := a.request(&c.d, sip.INVITE, offer, "application/sdp")
	if err == nil {
		c.d.ReinviteCSeq = c.d.LocalCSeq // a takeover ACKs its 2xx
	}
	d := c.d
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("build re-INVITE: %w", err)
	}
	_ = a.saveDialog(ctx, &d)
	rctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	res, err := c.do(rctx, req)
	c.mu.Lock()
	c.d.ReinviteCSeq = 0
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("re-INVITE: %w", err)
	}
	if !res.IsSuccess() {
		return &SIPError{Status: res.StatusCode, Reason: res.Reason}
	}
	c.mu.Lock()
	ack, err := a.requestWithCSeq(&c.d, sip.ACK, req.CSeq().SeqNo, nil, "")
	c.answer = offer
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("build ACK: %w", err)
	}
	if err := a.cli.WriteRequest(ack, prebuilt); err != nil {
		return fmt.Errorf("send ACK: %w", err)
	}
	c.applyAnswer(ctx, res)
	c.mu.Lock()
	d = c.d
	c.mu.Unlock()
	if err := a.saveDialog(ctx, &d); err != nil {
		c.log.Warn("save dialog failed", "err", err)
	}
	return nil
}

// applyAnswer points the termination at the media of the 2xx to our re-offer when it
// differs from what the termination has: the far end may answer a hold from a new
// address, and the media gateway's hold state follows the answer's direction both ways
// (a call held when its media moved, call_resume.go, holds its termination until the
// resume's answer lifts it). An answer that cannot be used leaves the media as it was.
func (c *call) applyAnswer(ctx context.Context, res *sip.Response) {
	ans, err := sdp.Parse(res.Body())
	if err != nil {
		c.log.Debug("answer to our re-offer unusable; media unchanged", "err", err)
		return
	}
	remote, err := sdp.NegotiateAnswer(ans)
	if err != nil {
		c.log.Debug("answer to our re-offer unusable; media unchanged", "err", err)
		return
	}
	c.mu.Lock()
	same, term := c.remote.Same(remote), c.d.Term
	c.mu.Unlock()
	if same {
		return
	}
	if err := c.a.mgw.Modify(ctx, term, remote); err != nil {
		c.a.met.mgwErrors.WithLabelValues("modify").Inc()
		c.log.Warn("modify termination after our re-offer failed", "err", err)
		return
	}
	c.mu.Lock()
	c.remote = remote
	c.d.Media = &remote
	c.mu.Unlock()
}
