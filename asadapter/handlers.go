package asadapter

import (
	"context"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// SIP timers for the 2xx retransmissions we do as UAS (RFC 3261 section 13.3.1.4):
// T1 500 ms doubling up to T2 4 s, for at most 64*T1 = 32 s.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
	timerH  = 64 * timerT1
)

func (a *Adapter) registerHandlers() {
	a.srv.OnInvite(a.onInvite)
	a.srv.OnAck(a.onAck)
	a.srv.OnBye(a.onBye)
	a.srv.OnCancel(a.onCancel)
	a.srv.OnInfo(a.onInfo)
	a.srv.OnUpdate(a.onUpdate)
	a.srv.OnOptions(a.onOptions)
}

// wellFormed checks the headers every handler relies on. sipgo already answers 400 to
// requests it cannot key a transaction on; this covers the rest.
func wellFormed(req *sip.Request) bool {
	return req.CallID() != nil && req.From() != nil && req.To() != nil && req.CSeq() != nil &&
		req.CSeq().MethodName == req.Method
}

// reply answers req; a non-empty tag replaces the To tag sipgo would invent.
func (a *Adapter) reply(tx sip.ServerTransaction, req *sip.Request, code int, reason, tag string, body []byte, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if tag != "" && res.To() != nil {
		res.To().Params.Remove("tag")
		res.To().Params.Add("tag", tag)
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if tx != nil {
		if err := tx.Respond(res); err != nil {
			a.log.Debug("respond failed", "status", code, "err", err)
		}
	}
	return res
}

func (a *Adapter) reject(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	a.met.sipBad.Inc()
	a.reply(tx, req, code, reason, "", nil)
}

// dialogCall finds the local call of an in-dialog request and checks its tags.
func (a *Adapter) dialogCall(req *sip.Request) *call {
	c := a.callByID(req.CallID().Value())
	if c == nil {
		return nil
	}
	from, _ := req.From().Params.Get("tag")
	to, _ := req.To().Params.Get("tag")
	c.mu.Lock()
	defer c.mu.Unlock()
	if to != c.d.LocalTag || (c.d.RemoteTag != "" && from != c.d.RemoteTag) {
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

func (a *Adapter) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		a.reject(tx, req, 400, "Bad Request")
		return
	}
	c := a.dialogCall(req)
	if c == nil {
		a.reject(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	c.inSequence(req)
	a.reply(tx, req, 200, "OK", "", nil)
	signal(c.byeC)
}

func (a *Adapter) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if req.CallID() == nil {
		return
	}
	if c := a.callByID(req.CallID().Value()); c != nil {
		signal(c.ackC)
	}
}

// onCancel sees only CANCELs that match no INVITE transaction (sipgo answers the others
// and ends their INVITE with 487).
func (a *Adapter) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	a.reject(tx, req, 481, "Call/Transaction Does Not Exist")
}

func (a *Adapter) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	a.reply(tx, req, 200, "OK", "", nil, sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Accept", "application/sdp"), sip.NewHeader("Supported", "timer"))
}

// onInfo accepts INFO in a dialog (DTMF from the far end is not passed to the browser).
func (a *Adapter) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		a.reject(tx, req, 400, "Bad Request")
		return
	}
	c := a.dialogCall(req)
	if c == nil {
		a.reject(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	c.inSequence(req)
	a.reply(tx, req, 200, "OK", "", nil)
}

// onUpdate answers UPDATE (RFC 3311): a session refresh, or a new offer.
func (a *Adapter) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		a.reject(tx, req, 400, "Bad Request")
		return
	}
	c, hdrs, body, ok := a.inDialogOffer(req, tx)
	if !ok {
		return
	}
	a.reply(tx, req, 200, "OK", "", body, hdrs...)
	c.publishHold()
}

// inDialogOffer finds the call of an in-dialog UPDATE or re-INVITE, checks its CSeq order
// and answers its offer (RFC 3264). On any refusal it has already answered the request and
// reports false.
func (a *Adapter) inDialogOffer(req *sip.Request, tx sip.ServerTransaction) (*call, []sip.Header, []byte, bool) {
	c := a.dialogCall(req)
	if c == nil {
		a.reject(tx, req, 481, "Call/Transaction Does Not Exist")
		return nil, nil, nil, false
	}
	if !c.inSequence(req) {
		a.reject(tx, req, 500, "Out of order")
		return nil, nil, nil, false
	}
	hdrs, body, code, reason := c.modify(req)
	if code != 200 {
		a.reject(tx, req, code, reason)
		return nil, nil, nil, false
	}
	return c, hdrs, body, true
}

// onReInvite answers a re-INVITE (hold, resume, new media address, session refresh)
// per RFC 3264 and waits for its ACK.
func (a *Adapter) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c, hdrs, body, ok := a.inDialogOffer(req, tx)
	if !ok {
		return
	}
	c.mu.Lock()
	target := contactTarget(req)
	if target != "" {
		c.d.Target = target // RFC 3261 12.2.2: a target refresh
	}
	d := c.d
	c.mu.Unlock()
	a.met.reinvites.Inc()
	ctx, cancel := c.a.cleanupCtx()
	_ = a.saveDialog(ctx, &d)
	cancel()
	a.respond2xx(tx, req, d.LocalTag, body, c.ackC, hdrs...)
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
	ctx, cancel := c.a.cleanupCtx()
	defer cancel()
	if err := c.a.commit(ctx, c.player, store.Expect(c.a.f.callID, c.callID()), *hold); err != nil {
		c.log.Debug("write hold failed", "err", err)
	}
}

// modify applies the offer of a re-INVITE or UPDATE (if any) and the session timer; it
// returns the headers and body of our 2xx, or a failure status.
func (c *call) modify(req *sip.Request) ([]sip.Header, []byte, int, string) {
	a := c.a
	hdrs := []sip.Header{a.contactHeader(req.Transport())}
	c.mu.Lock()
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
	ctx, cancel := c.a.cleanupCtx()
	defer cancel()
	c.mu.Lock()
	term, local, old := c.d.Term, c.local, c.remote
	c.mu.Unlock()
	if err := a.mgw.Modify(ctx, term, remote); err != nil {
		a.met.mgwErrors.WithLabelValues("modify").Inc()
		c.log.Warn("modify termination failed", "err", err)
		return nil, nil, 500, "Media Gateway Error"
	}
	c.mu.Lock()
	c.remote = remote
	if !old.Same(remote) {
		c.d.Origin.Version++
	}
	body := sdp.Answer(c.d.Origin, a.cfg.User, local.Addr, local.Port, offer, chosen, remote)
	c.answer = body
	c.mu.Unlock()
	held := remote.Held()
	var hold store.Op
	if held {
		hold = store.Set(a.f.hold, holdRemote)
	} else {
		hold = store.Del(a.f.hold)
	}
	c.mu.Lock()
	c.hold = &hold // published by publishHold once the far end has our answer
	c.mu.Unlock()
	c.log.Info("media modified by the far end", "held", held, "rtp", fmt.Sprintf("%s:%d", remote.Addr, remote.Port))
	return append(hdrs, sip.NewHeader("Content-Type", "application/sdp")), body, 200, ""
}

// respond2xx sends a 2xx to an INVITE and retransmits it over unreliable transports
// until the ACK arrives (RFC 3261 section 13.3.1.4); false when no ACK came in time.
func (a *Adapter) respond2xx(tx sip.ServerTransaction, req *sip.Request, tag string, body []byte, ackC chan struct{}, hdrs ...sip.Header) bool {
	select { // an old ACK must not count for this 2xx
	case <-ackC:
	default:
	}
	res := a.reply(nil, req, 200, "OK", tag, body, hdrs...)
	if err := tx.Respond(res); err != nil {
		a.log.Debug("respond 2xx failed", "err", err)
	}
	reliable := sip.IsReliable(req.Transport())
	wait := timerT1
	deadline := time.NewTimer(timerH)
	defer deadline.Stop()
	for {
		var retransmit <-chan time.Time
		if !reliable {
			retransmit = time.After(wait)
		}
		select {
		case <-ackC:
			return true
		case <-deadline.C:
			return false
		case <-retransmit:
			_ = tx.Respond(res)
			wait = min(2*wait, timerT2)
		}
	}
}

// onStrayResponse sees responses that match no client transaction: a 2xx retransmitted
// after our INVITE transaction ended gets our ACK again.
func (a *Adapter) onStrayResponse(res *sip.Response) {
	if !res.IsSuccess() || res.CSeq() == nil || res.CSeq().MethodName != sip.INVITE || res.CallID() == nil {
		return
	}
	c := a.callByID(res.CallID().Value())
	if c == nil {
		return
	}
	c.mu.Lock()
	ack := c.lastAck
	c.mu.Unlock()
	if ack != nil && ack.CSeq().SeqNo == res.CSeq().SeqNo {
		_ = a.cli.WriteRequest(ack, prebuilt)
	}
}

// runContext returns Run's context (Background before Run).
func (a *Adapter) runContext() context.Context {
	if p := a.runCtx.Load(); p != nil {
		return *p
	}
	return context.Background()
}
