package asadapter

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The SIP server side: which handler takes which method, and how requests are answered.
// Handlers run on sipgo's goroutines; owned makes each of them count under the adapter's
// owner while it runs, so Run does not return while one still works for a call.

// SIP timers for the 2xx retransmissions we do as UAS (RFC 3261 section 13.3.1.4):
// T1 500 ms doubling up to T2 4 s, for at most 64*T1 = 32 s.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
	timerH  = 64 * timerT1
)

func (a *Adapter) registerHandlers() {
	a.srv.OnInvite(a.owned(a.onInvite))
	a.srv.OnAck(a.owned(a.onAck))
	a.srv.OnBye(a.owned(a.onBye))
	a.srv.OnCancel(a.owned(a.onCancel))
	a.srv.OnInfo(a.owned(a.onInfo))
	a.srv.OnUpdate(a.owned(a.onUpdate))
	a.srv.OnOptions(a.owned(a.onOptions))
	// Any other method (REGISTER, MESSAGE, a NOTIFY when nothing mounted one ...): 405
	// with our Allow, through owned like the others (sipgo's own logs a warning a request).
	a.srv.OnNoRoute(a.owned(a.onNoRoute))
}

// owned wraps a handler so the adapter's owner counts it while it runs. Once Run is
// ending, a request is answered 503 (an ACK, which has no answer, is dropped).
func (a *Adapter) owned(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if !a.own.enter() {
			if req.Method != sip.ACK {
				a.reply(tx, req, 503, "Service Unavailable", "", nil)
			}
			return
		}
		defer a.own.leave()
		if !answerable(req) {
			// No response could be matched to it (RFC 3261 section 8.1.3.3): nothing is
			// sent, sipgo ends the transaction once the handler returns. Only the trust
			// domain's requests get here so: the edge drops the others.
			a.met.sipBad.Inc()
			a.log.Debug("unanswerable SIP request dropped", "method", req.Method.String(), "source", req.Source())
			return
		}
		release, ok := a.admitRequest(req)
		if !ok {
			// Too many requests of this untrusted source in progress: one 503, no work.
			a.reply(tx, req, 503, "Service Unavailable", "", nil, sip.NewHeader("Retry-After", "10"))
			return
		}
		if release != nil {
			defer release()
		}
		h(req, tx)
	}
}

// answerable reports whether req has what a response copies and its reader matches it
// by (RFC 3261 section 8.2.6.2): a Via, From, To, Call-ID and CSeq.
func answerable(req *sip.Request) bool {
	return req.Via() != nil && req.From() != nil && req.To() != nil && req.CallID() != nil && req.CSeq() != nil
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

// reject answers req with a failure and counts it as a rejected request.
func (a *Adapter) reject(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	a.met.sipBad.Inc()
	a.reply(tx, req, code, reason, "", nil)
}

// respond2xx sends a 2xx to an INVITE and retransmits it over unreliable transports
// until the ACK arrives (RFC 3261 section 13.3.1.4); false when no ACK came in time,
// ctx (Run's) ended or a CANCEL ended the transaction before the 2xx went out (the caller
// then checks tx.Err()).
//
// The far end's BYE (byeC, nil when the caller watches it itself) ends the wait too: the
// caller sent it in the dialog our 2xx made, so it had the 2xx, and its ACK was lost. The
// BYE is signalled again on byeC for the confirmed call to end on. Waiting on for an ACK
// that will not come held an ended call for the 2xx's 32 s, its user busy meanwhile.
func (a *Adapter) respond2xx(ctx context.Context, tx sip.ServerTransaction, req *sip.Request, tag string, body []byte, ackC, byeC chan struct{}, hdrs ...sip.Header) bool {
	select { // an old ACK must not count for this 2xx
	case <-ackC:
	default:
	}
	res := a.reply(nil, req, 200, "OK", tag, body, hdrs...)
	if err := tx.Respond(res); err != nil {
		if errors.Is(err, sip.ErrTransactionCanceled) {
			// A CANCEL won the race: the transaction answered 487 and drops our 200,
			// so no ACK will ever come.
			return false
		}
		a.log.Debug("respond 2xx failed", "err", err)
	}
	reliable := sip.IsReliable(req.Transport())
	wait := timerT1
	deadline := time.NewTimer(timerH)
	defer deadline.Stop()
	retransmit := time.NewTimer(wait)
	defer retransmit.Stop()
	if reliable {
		retransmit.Stop()
	}
	for {
		select {
		case <-ackC:
			return true
		case <-byeC:
			signal(byeC)
			return true
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-retransmit.C:
			_ = tx.Respond(res)
			wait = min(2*wait, timerT2)
			retransmit.Reset(wait)
		}
	}
}

// onOptions answers OPTIONS (in or out of a dialog) with what we support.
func (a *Adapter) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	a.reply(tx, req, 200, "OK", "", nil, sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Accept", "application/sdp"), sip.NewHeader("Supported", "timer"))
}

// onNoRoute answers a method we do not handle.
func (a *Adapter) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	if req.Method == sip.ACK {
		return // an ACK has no answer
	}
	a.met.sipBad.Inc()
	a.reply(tx, req, 405, "Method Not Allowed", "", nil, sip.NewHeader("Allow", allowMethods))
}

// onCancel sees only CANCELs that match no INVITE transaction (sipgo answers the others
// and ends their INVITE with 487).
func (a *Adapter) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	a.reject(tx, req, 481, "Call/Transaction Does Not Exist")
}
