package asadapter

import (
	"context"
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The end of a cancelled INVITE transaction, after the player was let go. Once a CANCEL is
// decided (the browser hung up, the timeout, the drain), nothing the far end still says
// can give the user a call: a 487, a refusal, or a 200 that crossed the CANCEL (which gets
// an ACK and a BYE). So the call writes its result and releases its claim at once, and a
// cancelling goroutine of the adapter finishes the transaction: a re-dial on the same
// player no longer waits for a far end that is slow to answer the CANCEL (up to
// cancelWait, 32 s, when it never does).

// cancelling finishes an INVITE client transaction whose CANCEL was decided. It owns tx
// and d (a copy of the call's dialog: the call's own record may already be a new call's).
type cancelling struct {
	a   *Adapter
	log *slog.Logger // the call's (player and call_id)
	inv *sip.Request
	tx  sip.ClientTransaction
	d   dialog
	// provisional: a provisional response came (the CANCEL may go out); cancelSent: it did.
	provisional, cancelSent bool
}

// letGo hands the transaction over to a cancelling goroutine of the adapter and returns
// the outcome the call ends with; false when the adapter is ending (Run's end abandons
// calls anyway), and the call goes on waiting for the final response itself.
func (iv *inviting) letGo() (inviteOutcome, bool) {
	c := iv.c
	c.mu.Lock()
	d := c.d
	c.mu.Unlock()
	cg := &cancelling{a: c.a, log: c.log, inv: iv.inv, tx: iv.tx, d: d,
		provisional: iv.provisional, cancelSent: iv.cancelSent}
	if !c.a.own.spawn(cg.run) {
		return inviteOutcome{}, false
	}
	c.log.Debug("player let go; the cancelled INVITE ends in the background")
	return inviteOutcome{cancelled: iv.cancelled, err: iv.cancelled}, true
}

// run waits for the final response for at most cancelWait, or until Run's end (a crash
// leaves the far end to its own timers, as it does for calls).
func (cg *cancelling) run() {
	ctx := cg.a.runContext()
	timeout := time.NewTimer(cancelWait)
	defer timeout.Stop()
	defer cg.tx.Terminate()
	if cg.provisional && !cg.cancelSent {
		cg.sendCancel()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timeout.C:
			cg.log.Info("cancelled INVITE got no final response", "waited", cancelWait)
			return
		case <-cg.tx.Done():
			return
		case res := <-cg.tx.Responses():
			switch {
			case res.IsProvisional():
				cg.provisional = true
				if !cg.cancelSent {
					cg.sendCancel()
				}
			case res.IsSuccess():
				cg.crossed(ctx, res)
				return
			default:
				// sipgo ACKs a final failure itself (RFC 3261 section 17.1.1.3).
				cg.log.Debug("cancelled INVITE ended", "status", res.StatusCode)
				return
			}
		}
	}
}

func (cg *cancelling) sendCancel() {
	cg.cancelSent = true
	req := cancelFor(cg.inv)
	cg.a.own.spawn(func() {
		ctx, cancel := cg.a.cleanupCtx()
		defer cancel()
		res, err := cg.a.cli.Do(ctx, req, prebuilt)
		if err != nil || res == nil { // nil, nil: the user agent is closing
			cg.log.Debug("CANCEL got no answer", "err", err)
			return
		}
		cg.log.Debug("CANCEL answered", "status", res.StatusCode)
	})
}

// crossed ends a call whose 200 crossed our CANCEL: ACK (again for each retransmitted 200
// while the transaction lasts, as reack does), then BYE.
func (cg *cancelling) crossed(ctx context.Context, res *sip.Response) {
	a, d := cg.a, &cg.d
	d.RemoteTag, _ = res.To().Params.Get("tag")
	d.State = DialogConfirmed
	d.RouteSet = routeSet(res, true)
	if t := contactTarget(res); t != "" {
		d.Target = t
	}
	ack, err := a.requestWithCSeq(d, sip.ACK, d.InviteCSeq, nil, "")
	if err != nil {
		cg.log.Warn("build ACK of an answer crossing our CANCEL failed", "err", err)
		return
	}
	if err := a.cli.WriteRequest(ack, prebuilt); err != nil {
		cg.log.Warn("send ACK failed", "err", err)
	}
	cg.log.Info("answer crossed our CANCEL; hanging up")
	bye, err := a.request(d, sip.BYE, nil, "")
	if err != nil {
		cg.log.Warn("build BYE failed", "err", err)
		return
	}
	done := make(chan struct{})
	a.own.spawn(func() {
		defer close(done)
		bctx, cancel := a.cleanupCtx()
		defer cancel()
		if r, err := a.do(bctx, d.User, bye); err != nil {
			cg.log.Warn("BYE failed", "err", err)
		} else {
			cg.log.Debug("BYE answered", "status", r.StatusCode)
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case r := <-cg.tx.Responses():
			if r.IsSuccess() {
				_ = a.cli.WriteRequest(ack, prebuilt)
			}
		}
	}
}
