package asadapter

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// cancelWait bounds how long we wait for the final response after a CANCEL: the far end
// answers 487 at once; 32 s (64*T1) is how long a transaction may take at most.
const cancelWait = 32 * time.Second

// startOutgoing claims a player that asks for a call and starts the call's goroutine.
func (a *Adapter) startOutgoing(ctx context.Context, player string, snap store.Read) {
	fl := snap.Fields
	if a.draining.Load() {
		return // left to the instances that stay
	}
	ok, err := a.claim(ctx, player)
	if err != nil {
		a.log.Warn("claim failed; the rescan retries", "player", player, "err", err)
		return
	}
	if !ok {
		return // another instance handles it
	}
	dest := fl[a.f.remote]
	if dest == "" {
		dest = fl[a.f.conference]
	}
	callID := randHex(16) + "@" + a.cfg.Domain
	mgwExpect := store.ExpectAbsent(a.f.mgwState)
	if v, ok := fl[a.f.mgwState]; ok {
		mgwExpect = store.Expect(a.f.mgwState, v)
	}
	target, terr := a.resolveTarget(dest)
	ops := []store.Op{
		store.Expect(a.f.playerState, stateConnecting), mgwExpect,
		store.Set(a.f.mgwState, stateConnecting), store.Set(a.f.callID, callID),
		store.Del(a.f.sipStatus), store.Del(a.f.sipReason), store.Del(a.f.mgwURL),
		store.Del(a.f.progress), store.Del(a.f.hold), store.Del(a.f.caller),
	}
	if terr != nil {
		ops = append(ops[:2], a.failOps(0, "bad remote: "+terr.Error())...)
		ops = append(ops, store.Set(a.f.callID, callID))
	}
	if err := a.commit(ctx, player, ops...); err != nil {
		a.release(ctx, player)
		if !errors.Is(err, store.ErrExpectFailed) {
			a.log.Warn("start call failed; the rescan retries", "player", player, "err", err)
		}
		return
	}
	if terr != nil {
		a.release(ctx, player)
		a.log.Info("refused a call to a bad remote", "player", player, "remote", dest, "err", terr)
		return
	}
	c := a.newCall(player, dirOut, callID)
	c.d.CallID = callID
	if !a.addCall(c, callID) {
		if a.draining.Load() {
			c.finish("drained", a.shutdownOps()...)
			return
		}
		c.finish("busy", a.failOps(503, "gateway busy")...)
		return
	}
	go c.runOut(ctx, target, fl[a.f.encoding])
}

// resolveTarget turns what the browser wrote as remote or conference into a SIP URI:
// a sip:/sips: URI as is, tel:+N as sip:+N@domain;user=phone, user@host as sip:user@host
// and a bare user as sip:user@domain.
func (a *Adapter) resolveTarget(dest string) (string, error) {
	dest = strings.TrimSpace(dest)
	if dest == "" {
		return "", errors.New("empty")
	}
	var s string
	switch {
	case strings.HasPrefix(dest, "sip:"), strings.HasPrefix(dest, "sips:"):
		s = dest
	case strings.HasPrefix(dest, "tel:"):
		s = "sip:" + strings.TrimPrefix(dest, "tel:") + "@" + a.cfg.Domain + ";user=phone"
	case strings.Contains(dest, "@"):
		s = "sip:" + dest
	default:
		s = "sip:" + dest + "@" + a.cfg.Domain
	}
	if strings.ContainsAny(s, " \t\r\n<>\"") {
		return "", fmt.Errorf("%.80q is not a SIP URI", dest)
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil || u.Host == "" {
		return "", fmt.Errorf("%.80q is not a SIP URI", dest)
	}
	return u.String(), nil
}

// runOut drives an outgoing call from the local termination to its end.
func (c *call) runOut(ctx context.Context, target, encoding string) {
	defer close(c.done)
	defer c.a.removeCall(c)
	a := c.a
	local, err := a.mgw.AddLocal(ctx, LocalRequest{Player: c.player, CallID: c.callID()})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		a.met.mgwErrors.WithLabelValues("add_local").Inc()
		c.log.Warn("add local termination failed", "err", err)
		c.finish("mgw_error", a.failOps(0, "media gateway: "+err.Error())...)
		return
	}
	display, from := a.callerIdentity(c.player)
	c.mu.Lock()
	c.local = local
	c.d = dialog{
		Player: c.player, Owner: a.cfg.Instance, Dir: dirOut, State: dlgCalling,
		CallID: c.d.CallID, LocalTag: sip.GenerateTagN(16),
		LocalURI: nameAddr(display, from), RemoteURI: "<" + target + ">",
		LocalCSeq: 1 + rand.Uint32N(30000), Target: target, InviteURI: target, Term: local.ID,
		Origin: sdp.Origin{Sess: rand.Uint64N(1 << 62), Version: 1},
	}
	offer := sdp.Offer(c.d.Origin, a.cfg.User, local.Addr, local.Port, encoding, sdp.SendRecv)
	c.answer = offer
	inv, err := a.inviteRequest(&c.d, offer)
	d := c.d
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("build INVITE failed", "err", err)
		c.finish("error", a.failOps(0, err.Error())...)
		return
	}
	if err := a.saveDialog(ctx, &d); err != nil {
		c.log.Warn("save dialog failed", "err", err)
		c.finish("error", a.failOps(0, "gateway storage error")...)
		return
	}
	c.mu.Lock()
	c.d.listed = true
	c.mu.Unlock()
	if a.draining.Load() {
		// Nothing sent yet: no need to ring the far end only to cancel at once.
		c.drained = true
		c.finish("drained", a.shutdownOps()...)
		return
	}
	res, cancelled, err := c.invite(ctx, inv)
	switch {
	case ctx.Err() != nil:
		return // abandoned: Run ended
	case err != nil && c.drained && errors.Is(err, cancelled):
		c.log.Info("call cancelled by the drain", "err", err)
		c.finish("drained", a.shutdownOps()...)
		return
	case err != nil:
		var se *SIPError
		if errors.As(err, &se) {
			c.log.Info("call failed", "status", se.Status, "reason", se.Reason)
			c.finish("rejected", a.failOps(se.Status, se.Reason)...)
		} else {
			c.log.Warn("INVITE failed", "err", err)
			c.finish("error", a.failOps(0, err.Error())...)
		}
		return
	}
	// 2xx: the dialog is confirmed and ACKed.
	if cancelled != nil {
		// The browser hung up (or the drain or the timeout cancelled) while the answer
		// was on its way.
		c.bye()
		switch {
		case c.drained:
			c.finish("drained", a.shutdownOps()...)
		case cancelled.Status == 487:
			c.finish("cancelled", store.Set(a.f.mgwState, stateDisconnected))
		default:
			c.finish("cancelled", a.failOps(cancelled.Status, cancelled.Reason)...)
		}
		return
	}
	ans, err := sdp.Parse(res.Body())
	var remote sdp.Remote
	if err == nil {
		remote, err = sdp.NegotiateAnswer(ans)
	}
	if err != nil {
		c.log.Warn("unusable SDP answer; hanging up", "err", err)
		c.bye()
		c.finish("bad_sdp", a.failOps(488, "Not Acceptable Here: "+err.Error())...)
		return
	}
	url, err := a.mgw.AddRemote(ctx, local.ID, remote)
	if err != nil {
		a.met.mgwErrors.WithLabelValues("add_remote").Inc()
		c.log.Warn("add remote termination failed; hanging up", "err", err)
		c.bye()
		c.finish("mgw_error", a.failOps(0, "media gateway: "+err.Error())...)
		return
	}
	c.mu.Lock()
	c.remote = remote
	c.mu.Unlock()
	err = a.commit(ctx, c.player,
		store.Expect(a.f.callID, c.callID()), store.Expect(a.f.playerState, stateConnecting),
		store.Set(a.f.mgwURL, url), store.Set(a.f.mgwState, stateConnected),
		store.Set(a.f.playerState, stateConnected), store.Set(a.f.sipStatus, fmt.Sprint(res.StatusCode)),
		store.Set(a.f.sipReason, res.Reason), store.Del(a.f.progress))
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.log.Info("player changed before the answer was written; hanging up", "err", err)
		c.bye()
		c.finish("cancelled", a.endOps()...)
		return
	}
	a.met.setup.Observe(time.Since(c.seenAt).Seconds())
	c.log.Info("call connected", "remote_rtp", fmt.Sprintf("%s:%d", remote.Addr, remote.Port))
	c.confirmed(ctx)
}

func (c *call) callID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.d.CallID
}

// inviteRequest builds the initial INVITE of d (through the outbound proxy).
func (a *Adapter) inviteRequest(d *dialog, offer []byte) (*sip.Request, error) {
	d.LocalCSeq++
	req, err := a.requestWithCSeq(d, sip.INVITE, d.LocalCSeq, offer, "application/sdp")
	if err != nil {
		return nil, err
	}
	if r := a.proxyRoute(); r != nil {
		req.PrependHeader(r)
		// The first hop changed: recompute Via and Contact for its transport.
		req.RemoveHeader("Contact")
		req.AppendHeader(a.contactHeader(nextHopTransport(req)))
		a.addVia(req)
	}
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	d.InviteCSeq = d.LocalCSeq
	d.InviteVia = req.Via().Value()
	return req, nil
}

// allowMethods is what we accept in a dialog.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"

// invite runs the INVITE client transaction: provisional responses become progress, the
// browser hanging up, the drain or the timeout cancels, a challenge is answered once. It
// returns the 2xx (already ACKed, the dialog confirmed) or a *SIPError. cancelled is not
// nil when a CANCEL was decided (its reason is what the player shows), also for a 2xx
// that crossed it.
//
// A CANCEL is sent only once a provisional response arrived (RFC 3261 section 9.1: before
// that, the far end may not have the INVITE yet and the CANCEL could overtake it); if
// none ever arrives, the INVITE's own timeout (Timer B) ends the transaction.
func (c *call) invite(ctx context.Context, inv *sip.Request) (*sip.Response, *SIPError, error) {
	a := c.a
	tx, err := a.cli.TransactionRequest(ctx, inv, prebuilt)
	if err != nil {
		return nil, nil, fmt.Errorf("send INVITE: %w", err)
	}
	timeout := time.NewTimer(a.cfg.InviteTimeout)
	defer timeout.Stop()
	renew := time.NewTicker(a.renewEvery())
	defer renew.Stop()
	drain := a.drainC
	authed := false
	provisional := false // a provisional response arrived on the current transaction
	cancelSent := false
	var cancelReason *SIPError
	startCancel := func(reason *SIPError) {
		cancelReason = reason
		timeout.Reset(cancelWait)
		if provisional {
			cancelSent = true
			c.cancel(ctx, inv)
		}
	}
	lastProgress := ""
	var progressDone chan struct{} // closed when the last progress write is done
	for {
		select {
		case <-ctx.Done():
			tx.Terminate()
			return nil, nil, ctx.Err()
		case <-renew.C:
			if err := a.renew(ctx, c.player); errors.Is(err, ErrClaimLost) {
				c.log.Warn("claim lost while calling")
			}
		case <-timeout.C:
			if cancelReason == nil {
				c.log.Info("no answer; cancelling", "timeout", a.cfg.InviteTimeout)
				startCancel(&SIPError{Status: 408, Reason: "No answer"})
			} else {
				tx.Terminate()
				return nil, cancelReason, cancelReason
			}
		case <-drain:
			drain = nil // closed for good: handle it once
			if cancelReason == nil {
				c.log.Info("gateway shutting down; cancelling")
				c.drained = true
				startCancel(&SIPError{Status: 487, Reason: reasonShutdown})
			}
		case <-c.wakeC:
			if cancelReason != nil {
				continue
			}
			if fl, ok := c.snapshot(ctx); c.wantsEnd(fl, ok) {
				c.log.Info("browser hung up before the answer; cancelling")
				startCancel(&SIPError{Status: 487, Reason: "Request Terminated"})
			}
		case <-tx.Done():
			if cancelReason != nil {
				return nil, cancelReason, cancelReason
			}
			return nil, nil, &SIPError{Status: 408, Reason: "Request Timeout"}
		case res := <-tx.Responses():
			switch {
			case res.IsProvisional():
				provisional = true
				if cancelReason != nil && !cancelSent {
					cancelSent = true
					c.cancel(ctx, inv)
				}
				p := progressOf(res)
				if p != lastProgress && cancelReason == nil {
					lastProgress = p
					c.earlyDialog(res)
					// Written in the background so the 200 that may follow at once is not
					// held up; the expects keep a late progress write from landing after
					// the call connected or ended.
					ops := []store.Op{store.Expect(a.f.callID, c.callID()),
						store.Expect(a.f.mgwState, stateConnecting), store.Expect(a.f.playerState, stateConnecting),
						store.Set(a.f.progress, p), store.Set(a.f.sipStatus, fmt.Sprint(res.StatusCode)),
						store.Set(a.f.sipReason, res.Reason)}
					prev, done := progressDone, make(chan struct{})
					progressDone = done
					go func() {
						defer close(done)
						if prev != nil {
							<-prev // in the order the responses came
						}
						if err := a.commit(ctx, c.player, ops...); err != nil && !errors.Is(err, store.ErrExpectFailed) {
							c.log.Warn("write progress failed", "err", err)
						}
					}()
				}
			case res.IsSuccess():
				if err := c.confirm(ctx, inv, res); err != nil {
					return nil, cancelReason, err
				}
				go c.reack(tx)
				return res, cancelReason, nil
			case (res.StatusCode == 401 || res.StatusCode == 407) && a.cfg.AuthUser != "" && !authed && cancelReason == nil:
				authed = true
				tx.Terminate()
				ntx, err := a.cli.TransactionDigestAuth(ctx, inv, res, a.digest())
				if err != nil {
					return nil, nil, fmt.Errorf("answer %d challenge: %w", res.StatusCode, err)
				}
				tx = ntx
				provisional = false
				c.mu.Lock()
				c.d.LocalCSeq = inv.CSeq().SeqNo
				c.d.InviteCSeq = inv.CSeq().SeqNo
				c.d.InviteVia = inv.Via().Value()
				d := c.d
				c.mu.Unlock()
				_ = a.saveDialog(ctx, &d)
			default:
				tx.Terminate()
				if cancelReason != nil && res.StatusCode == 487 {
					return nil, cancelReason, cancelReason
				}
				return nil, cancelReason, &SIPError{Status: res.StatusCode, Reason: res.Reason}
			}
		}
	}
}

func progressOf(res *sip.Response) string {
	switch {
	case res.StatusCode == 100:
		return progressTrying
	case res.StatusCode == 183 || len(res.Body()) > 0:
		return progressEarly
	case res.StatusCode == 180:
		return progressRinging
	}
	return fmt.Sprint(res.StatusCode)
}

// earlyDialog records the remote tag of a provisional response (for a takeover's CANCEL
// the tag does not matter; for logs and the record it does).
func (c *call) earlyDialog(res *sip.Response) {
	tag, _ := res.To().Params.Get("tag")
	if tag == "" {
		return
	}
	c.mu.Lock()
	if c.d.State == dlgCalling {
		c.d.State = dlgEarly
		c.d.RemoteTag = tag
	}
	c.mu.Unlock()
}

// confirm turns a 2xx into the confirmed dialog, sends the ACK and stores the dialog.
func (c *call) confirm(ctx context.Context, inv *sip.Request, res *sip.Response) error {
	a := c.a
	c.mu.Lock()
	tag, _ := res.To().Params.Get("tag")
	c.d.RemoteTag = tag
	c.d.State = dlgConfirmed
	c.d.RouteSet = routeSet(res, true)
	if t := contactTarget(res); t != "" {
		c.d.Target = t
	}
	c.sessionTimerFromResponse(res)
	ack, err := a.requestWithCSeq(&c.d, sip.ACK, c.d.InviteCSeq, nil, "")
	d := c.d
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
	if err := a.saveDialog(ctx, &d); err != nil {
		c.log.Warn("save dialog failed", "err", err)
	}
	return nil
}

// reack answers retransmitted 2xx of the INVITE (our ACK was lost) until the transaction
// ends; provisional responses arriving after the 2xx (possible over TCP through a proxy
// with several workers) are ignored.
func (c *call) reack(tx sip.ClientTransaction) {
	for {
		select {
		case <-tx.Done():
			return
		case res := <-tx.Responses():
			if res.IsSuccess() {
				c.mu.Lock()
				ack := c.lastAck
				c.mu.Unlock()
				if ack != nil {
					_ = c.a.cli.WriteRequest(ack, prebuilt)
				}
			}
		}
	}
}

// cancel sends CANCEL for our INVITE (RFC 3261 section 9.1): same Request-URI, Call-ID,
// From, To, CSeq number, Route and top Via as the INVITE.
func (c *call) cancel(ctx context.Context, inv *sip.Request) {
	req := cancelFor(inv)
	go func() {
		res, err := c.a.cli.Do(ctx, req, prebuilt)
		if err != nil || res == nil { // nil, nil: the user agent is closing
			c.log.Debug("CANCEL got no answer", "err", err)
			return
		}
		c.log.Debug("CANCEL answered", "status", res.StatusCode)
	}()
}

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

// digest returns the configured credentials for sipgo's digest helpers.
func (a *Adapter) digest() sipgo.DigestAuth {
	return sipgo.DigestAuth{Username: a.cfg.AuthUser, Password: a.cfg.AuthPassword}
}
