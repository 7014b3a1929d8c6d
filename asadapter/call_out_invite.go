package asadapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sipport"
)

// cancelWait bounds how long we wait for the final response after a CANCEL: the far end
// answers 487 at once; 32 s (64*T1) is how long a transaction may take at most.
const cancelWait = 32 * time.Second

// inviteOutcome is how our INVITE transaction ended.
type inviteOutcome struct {
	// res is the 2xx (already ACKed, the dialog confirmed); nil otherwise.
	res *sip.Response
	// cancelled is not nil when a CANCEL was decided (its reason is what the player
	// shows), also for a 2xx that crossed it.
	cancelled *SIPError
	// err is a *SIPError for a final failure (cancelled itself after our CANCEL), a
	// transport error, or ctx's error.
	err error
	// hungUp says the browser hung up before the answer: whatever the far end answers
	// then (487 to our CANCEL, or a refusal that crossed it) ends a call the user ended,
	// not a failed one.
	hungUp bool
}

// inviting is the state of our INVITE client transaction while call.invite runs it. Only
// the call's goroutine touches it.
type inviting struct {
	c   *call
	inv *sip.Request          // the INVITE (sipgo rewrites its CSeq and Via on a challenge)
	tx  sip.ClientTransaction // the current transaction (a new one after a challenge)
	// timeout is InviteTimeout, then cancelWait once a CANCEL was decided.
	timeout *time.Timer

	authed      bool // a challenge was answered (only one is)
	provisional bool // a provisional response arrived on the current transaction
	cancelSent  bool
	// cancelled is why we cancel (nil: we do not); the player shows it.
	cancelled *SIPError
	// hungUp: the browser asked for the CANCEL (see inviteOutcome.hungUp).
	hungUp       bool
	lastProgress string // the progress value last written
}

// invite runs the INVITE client transaction: provisional responses become progress, the
// browser hanging up, the drain or the timeout cancels, a challenge is answered once.
//
// A CANCEL is sent only once a provisional response arrived (RFC 3261 section 9.1: before
// that, the far end may not have the INVITE yet and the CANCEL could overtake it); if
// none ever arrives, the INVITE's own timeout (Timer B) ends the transaction.
func (c *call) invite(ctx context.Context, inv *sip.Request) (out inviteOutcome) {
	a := c.a
	tx, err := a.cli.TransactionRequest(ctx, inv, prebuilt)
	if err != nil {
		return inviteOutcome{err: fmt.Errorf("send INVITE: %w", err)}
	}
	iv := &inviting{c: c, inv: inv, tx: tx, timeout: time.NewTimer(a.cfg.InviteTimeout)}
	defer iv.timeout.Stop()
	defer func() { out.hungUp = iv.hungUp }()
	drain := a.drainC
	for {
		select {
		case <-ctx.Done():
			iv.tx.Terminate()
			return inviteOutcome{err: ctx.Err()}
		case <-iv.timeout.C:
			if iv.cancelled != nil {
				iv.tx.Terminate()
				return inviteOutcome{cancelled: iv.cancelled, err: iv.cancelled}
			}
			c.log.Info("no answer; cancelling", "timeout", a.cfg.InviteTimeout)
			if out, ok := iv.startCancel(&SIPError{Status: 408, Reason: "No answer"}); ok {
				return out
			}
		case <-drain:
			drain = nil // closed for good: handle it once
			if iv.cancelled == nil {
				c.log.Info("gateway shutting down; cancelling")
				c.drained = true
				if out, ok := iv.startCancel(&SIPError{Status: 487, Reason: reasonShutdown}); ok {
					return out
				}
			}
		case <-c.wakeC:
			if iv.cancelled != nil {
				continue
			}
			if fl, ok := c.snapshot(ctx); c.wantsEnd(fl, ok) {
				c.log.Info("browser hung up before the answer; cancelling")
				iv.hungUp = true
				if out, ok := iv.startCancel(&SIPError{Status: 487, Reason: "Request Terminated"}); ok {
					return out
				}
			}
		case <-iv.tx.Done():
			if iv.cancelled != nil {
				return inviteOutcome{cancelled: iv.cancelled, err: iv.cancelled}
			}
			return inviteOutcome{err: &SIPError{Status: 408, Reason: "Request Timeout"}}
		case res := <-iv.tx.Responses():
			if out, done := iv.response(ctx, res); done {
				return out
			}
		}
	}
}

// response handles one response to the INVITE; done when it ended the transaction.
func (iv *inviting) response(ctx context.Context, res *sip.Response) (out inviteOutcome, done bool) {
	c := iv.c
	switch {
	case res.IsProvisional():
		iv.provisional = true
		if iv.cancelled != nil && !iv.cancelSent {
			iv.sendCancel()
		}
		if p := progressOf(res); p != iv.lastProgress && iv.cancelled == nil {
			iv.lastProgress = p
			c.earlyDialog(res)
			c.writeProgress(p, res)
		}
		return inviteOutcome{}, false
	case res.IsSuccess():
		if err := c.confirm(iv.inv, res); err != nil {
			return inviteOutcome{cancelled: iv.cancelled, err: err}, true
		}
		tx := iv.tx
		c.help(func(hctx context.Context) { c.reack(hctx, tx) })
		return inviteOutcome{res: res, cancelled: iv.cancelled}, true
	case (res.StatusCode == 401 || res.StatusCode == 407) && !iv.authed && iv.cancelled == nil:
		err := iv.reauthenticate(ctx, res)
		if err == nil {
			return inviteOutcome{}, false
		}
		iv.tx.Terminate()
		if errors.Is(err, sipport.ErrNoCredentials) {
			// Nothing to answer with: the challenge is the refusal.
			return inviteOutcome{err: &SIPError{Status: res.StatusCode, Reason: res.Reason}}, true
		}
		return inviteOutcome{err: fmt.Errorf("answer %d challenge: %w", res.StatusCode, err)}, true
	default:
		iv.tx.Terminate()
		if iv.cancelled != nil && res.StatusCode == 487 {
			return inviteOutcome{cancelled: iv.cancelled, err: iv.cancelled}, true
		}
		return inviteOutcome{cancelled: iv.cancelled, err: &SIPError{Status: res.StatusCode, Reason: res.Reason}}, true
	}
}

// startCancel decides to cancel for reason and lets the player go: a cancelling goroutine
// (call_out_cancel.go) sends the CANCEL (now if a provisional response came, else with the
// first one) and finishes the transaction, and the call ends with the outcome returned
// (ok). Only while the adapter is ending (no goroutine starts) does the call itself wait
// for the final response, for cancelWait.
func (iv *inviting) startCancel(reason *SIPError) (inviteOutcome, bool) {
	iv.cancelled = reason
	if out, ok := iv.letGo(); ok {
		return out, true
	}
	iv.timeout.Reset(cancelWait)
	if iv.provisional {
		iv.sendCancel()
	}
	return inviteOutcome{}, false
}

func (iv *inviting) sendCancel() {
	iv.cancelSent = true
	iv.c.cancel(iv.inv)
}

// reauthenticate answers a 401/407 to our INVITE with the credentials of the call's
// identity (the registered user's, or the gateway's own; caller.go) in a new transaction
// (the next CSeq and a new Via), and stores them in the dialog record: a takeover's CANCEL
// must match the INVITE the far end rings for.
func (iv *inviting) reauthenticate(ctx context.Context, res *sip.Response) error {
	c, a := iv.c, iv.c.a
	iv.authed = true
	c.mu.Lock()
	user := c.d.User
	c.mu.Unlock()
	if err := a.authorize(ctx, user, iv.inv, res); err != nil {
		return err
	}
	iv.tx.Terminate()
	a.reissue(iv.inv)
	tx, err := a.cli.TransactionRequest(ctx, iv.inv, prebuilt)
	if err != nil {
		return err
	}
	iv.tx = tx
	iv.provisional = false
	c.mu.Lock()
	c.d.LocalCSeq = iv.inv.CSeq().SeqNo
	c.d.InviteCSeq = iv.inv.CSeq().SeqNo
	c.d.InviteVia = iv.inv.Via().Value()
	d := c.d
	c.mu.Unlock()
	_ = a.saveDialog(ctx, &d)
	return nil
}

// confirm turns a 2xx into the confirmed dialog and sends the ACK. The confirmed dialog
// is stored with its media by connectOut, beside the player's connected state.
func (c *call) confirm(inv *sip.Request, res *sip.Response) error {
	a := c.a
	c.mu.Lock()
	tag, _ := res.To().Params.Get("tag")
	c.d.RemoteTag = tag
	c.d.State = DialogConfirmed
	c.d.RouteSet = routeSet(res, true)
	if t := contactTarget(res); t != "" {
		c.d.Target = t
	}
	c.sessionTimerFromResponse(res)
	ack, err := a.requestWithCSeq(&c.d, sip.ACK, c.d.InviteCSeq, nil, "")
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("build ACK: %w", err)
	}
	if err := a.cli.WriteRequest(ack, prebuilt); err != nil {
		c.log.Warn("send ACK failed", "err", err)
	}
	c.mu.Lock()
	c.lastAck = ack
	c.mu.Unlock()
	return nil
}

// reack answers retransmitted 2xx of the INVITE (our ACK was lost) until the transaction
// or the call ends; provisional responses arriving after the 2xx (possible over TCP
// through a proxy with several workers) are ignored.
func (c *call) reack(ctx context.Context, tx sip.ClientTransaction) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tx.Done():
			return
		case res := <-tx.Responses():
			if res.IsSuccess() && c.tryEnter() {
				c.mu.Lock()
				ack := c.lastAck
				c.mu.Unlock()
				if ack != nil {
					_ = c.a.cli.WriteRequest(ack, prebuilt)
				}
				c.leave()
			}
		}
	}
}

// cancel sends CANCEL for our INVITE (RFC 3261 section 9.1) on a helper of the call; its
// answer is only logged.
func (c *call) cancel(inv *sip.Request) {
	req := cancelFor(inv)
	c.help(func(ctx context.Context) {
		res, err := c.a.cli.Do(ctx, req, prebuilt)
		if err != nil || res == nil { // nil, nil: the user agent is closing
			c.log.Debug("CANCEL got no answer", "err", err)
			return
		}
		c.log.Debug("CANCEL answered", "status", res.StatusCode)
	})
}

// cancelFor builds the CANCEL of inv: same Request-URI, Call-ID, From, To, CSeq number,
// Route and top Via as the INVITE.
func cancelFor(inv *sip.Request) *sip.Request {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, r := range inv.GetHeaders("Route") {
		req.AppendHeader(sip.HeaderClone(r))
	}
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	req.Laddr = inv.Laddr
	return req
}
