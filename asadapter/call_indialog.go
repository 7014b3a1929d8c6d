package asadapter

import (
	"fmt"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// In-dialog requests from the far end: every one passes the same prologue (inDialog:
// well-formed, a dialog of ours that matches its tags or 481, CSeq order), then BYE ends
// the call, INFO is accepted, and a re-INVITE or UPDATE may carry a new offer (hold,
// resume, a new media address) and a session refresh.

// cseqOrder says what inDialog does with a request whose CSeq is not above the last one.
type cseqOrder bool

const (
	anyOrder cseqOrder = false // record the CSeq, accept the request anyway (BYE, INFO)
	inOrder  cseqOrder = true  // refuse it with 500 (re-INVITE, UPDATE: an old offer)
)

// inDialog is the prologue of every in-dialog request: the headers a handler relies on
// (400), a call of ours whose dialog matches the request's tags (481) and the CSeq order.
// It answers the request itself when it refuses it, and returns nil then; otherwise the
// handler acts for the call between inDialog and c.leave (pause.go).
func (a *Adapter) inDialog(req *sip.Request, tx sip.ServerTransaction, order cseqOrder) *call {
	if !wellFormed(req) {
		a.reject(tx, req, 400, "Bad Request")
		return nil
	}
	c := a.dialogCall(req)
	// A paused call answers once it resumes (the far end retransmits meanwhile, or waits
	// on its reliable transport); a fenced call is no longer ours to answer for: its next
	// holder ends it.
	if c == nil || !c.enter(a.runContext()) {
		a.reject(tx, req, 481, "Call/Transaction Does Not Exist")
		return nil
	}
	if !c.inSequence(req) && order == inOrder {
		c.leave()
		a.reject(tx, req, 500, "Out of order")
		return nil
	}
	return c
}

// dialogCall finds the local call of an in-dialog request by its tags (the Call-ID may
// have two legs here, see callsByID).
func (a *Adapter) dialogCall(req *sip.Request) *call {
	from, _ := req.From().Params.Get("tag")
	to, _ := req.To().Params.Get("tag")
	c := a.callByTag(req.CallID().Value(), to)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.d.RemoteTag != "" && from != c.d.RemoteTag {
		return nil
	}
	return c
}

// inSequence records the CSeq of a request from the peer; false for an old one.
func (c *call) inSequence(req *sip.Request) bool {
	n := req.CSeq().SeqNo
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.d.RemoteCSeq != 0 && n <= c.d.RemoteCSeq {
		return false
	}
	c.d.RemoteCSeq = n
	return true
}

// onBye answers the far end's BYE and tells the call, which ends (call_confirmed.go).
func (a *Adapter) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := a.inDialog(req, tx, anyOrder)
	if c == nil {
		return
	}
	defer c.leave()
	a.reply(tx, req, 200, "OK", "", nil)
	signal(c.byeC)
}

// onInfo accepts INFO in a dialog (DTMF from the far end is not passed to the browser).
func (a *Adapter) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := a.inDialog(req, tx, anyOrder)
	if c == nil {
		return
	}
	defer c.leave()
	a.reply(tx, req, 200, "OK", "", nil)
}

// onAck passes the ACK of our 2xx to its call (respond2xx waits for it).
func (a *Adapter) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if req.CallID() == nil || req.To() == nil {
		return
	}
	to, _ := req.To().Params.Get("tag")
	if c := a.callByTag(req.CallID().Value(), to); c != nil {
		signal(c.ackC)
	}
}

// onUpdate answers UPDATE (RFC 3311): a session refresh, or a new offer.
func (a *Adapter) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c := a.inDialog(req, tx, inOrder)
	if c == nil {
		return
	}
	defer c.leave()
	hdrs, body, code, reason := c.modify(req)
	if code != 200 {
		a.reject(tx, req, code, reason)
		return
	}
	c.mu.Lock()
	d := c.d
	c.mu.Unlock()
	// Before the answer: a takeover must know the version our answer carries.
	ctx, cancel := c.cleanupCtx()
	_ = a.saveDialog(ctx, &d)
	cancel()
	a.reply(tx, req, 200, "OK", "", body, hdrs...)
	c.publishHold()
}

// onReInvite answers a re-INVITE (hold, resume, new media address, session refresh)
// per RFC 3264 and waits for its ACK.
func (a *Adapter) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := a.inDialog(req, tx, inOrder)
	if c == nil {
		return
	}
	defer c.leave()
	hdrs, body, code, reason := c.modify(req)
	if code != 200 {
		a.reject(tx, req, code, reason)
		return
	}
	c.mu.Lock()
	if target := contactTarget(req); target != "" {
		c.d.Target = target // RFC 3261 12.2.2: a target refresh
	}
	d := c.d
	c.mu.Unlock()
	a.met.reinvites.Inc()
	ctx, cancel := c.cleanupCtx()
	_ = a.saveDialog(ctx, &d)
	cancel()
	a.respond2xx(a.runContext(), tx, req, d.LocalTag, body, c.ackC, hdrs...)
	c.publishHold()
}

// publishHold writes the hold state of the last re-offer to the player, after our answer
// went out (and, for a re-INVITE, its ACK came back): the browser may react by sending DTMF
// or other in-dialog requests, which must not overtake the answer.
func (c *call) publishHold() {
	c.mu.Lock()
	hold := c.hold
	c.hold = nil
	c.mu.Unlock()
	if hold == nil {
		return
	}
	ctx, cancel := c.cleanupCtx()
	defer cancel()
	if err := c.commit(ctx, store.Expect(c.a.f.callID, c.callID()), *hold); err != nil {
		c.log.Debug("write hold failed", "err", err)
	}
}

// modify applies the offer of a re-INVITE or UPDATE (if any) and the session timer; it
// returns the headers and body of our 2xx, or a failure status.
func (c *call) modify(req *sip.Request) ([]sip.Header, []byte, int, string) {
	a := c.a
	c.mu.Lock()
	// Our own re-INVITE is in progress (a session refresh, or the one that moves the media
	// of a call taken over, which has no media here until it is answered): a re-INVITE
	// or an offer crossing it gets 491 (RFC 3261 section 14.2, RFC 3311 section 5.2), and
	// the far end retries after its wait.
	if (req.Method == sip.INVITE || len(req.Body()) > 0) && (c.d.ReinviteCSeq != 0 || (c.resumed && c.local.ID == "")) {
		c.mu.Unlock()
		return nil, nil, 491, "Request Pending"
	}
	hdrs := []sip.Header{a.dialogContact(&c.d, req.Transport())}
	se := c.sessionTimerFromRequest(req)
	c.mu.Unlock()
	if se != "" {
		hdrs = append(hdrs, sip.NewHeader("Session-Expires", se), sip.NewHeader("Require", "timer"))
	}
	signal(c.seC)
	if len(req.Body()) == 0 {
		if req.Method == sip.UPDATE {
			return hdrs, nil, 200, ""
		}
		// An offerless re-INVITE: our current description is the offer, the ACK
		// carries the answer (which we do not need to change anything).
		c.mu.Lock()
		body := c.answer
		c.mu.Unlock()
		return append(hdrs, sip.NewHeader("Content-Type", "application/sdp")), body, 200, ""
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		return nil, nil, 400, "Bad SDP"
	}
	chosen, remote, err := sdp.NegotiateOffer(offer)
	if err != nil {
		return nil, nil, 488, "Not Acceptable Here"
	}
	ctx, cancel := c.cleanupCtx()
	defer cancel()
	c.mu.Lock()
	term, local, old := c.d.Term, c.local, c.remote
	c.mu.Unlock()
	if err := a.mgw.Modify(ctx, term, remote); err != nil {
		a.met.mgwErrors.WithLabelValues("modify").Inc()
		c.log.Warn("modify termination failed", "err", err)
		return nil, nil, 500, "Media Gateway Error"
	}
	held := remote.Held()
	hold := store.Del(a.f.hold)
	if held {
		hold = store.Set(a.f.hold, holdRemote)
	}
	c.mu.Lock()
	c.remote = remote
	c.d.Media = &remote
	if !old.Same(remote) {
		c.d.Origin.Version++
	}
	body := c.withFloor(sdp.Answer(c.d.Origin, a.cfg.User, local.Addr, local.Port, offer, chosen, remote), true)
	c.answer = body
	c.hold = &hold // published by publishHold once the far end has our answer
	c.mu.Unlock()
	c.log.Info("media modified by the far end", "held", held, "rtp", fmt.Sprintf("%s:%d", remote.Addr, remote.Port))
	return append(hdrs, sip.NewHeader("Content-Type", "application/sdp")), body, 200, ""
}

// onStrayResponse sees responses that match no client transaction: a 2xx retransmitted
// after our INVITE transaction ended gets our ACK again.
func (a *Adapter) onStrayResponse(res *sip.Response) {
	if !res.IsSuccess() || res.CSeq() == nil || res.CSeq().MethodName != sip.INVITE || res.CallID() == nil || res.From() == nil {
		return
	}
	from, _ := res.From().Params.Get("tag")
	c := a.callByTag(res.CallID().Value(), from)
	if c == nil {
		return
	}
	if !c.tryEnter() {
		return // paused or fenced: the far end retransmits its 2xx, or the next holder answers
	}
	defer c.leave()
	c.mu.Lock()
	ack := c.lastAck
	c.mu.Unlock()
	if ack != nil && ack.CSeq().SeqNo == res.CSeq().SeqNo {
		_ = a.cli.WriteRequest(ack, prebuilt)
	}
}
