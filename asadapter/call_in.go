package asadapter

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// An incoming call: an INVITE for a registered user reaches onInvite, which finds the
// player of the user's browser, negotiates the offer and claims the player; runIn writes
// the player ringing (setupIn), waits for the browser to answer or refuse (ring), answers
// with 200 (answerIn) and hands the call to its own goroutine for the confirmed call
// (call_confirmed.go).

// incoming is an INVITE to a browser while it rings.
type incoming struct {
	user     string // the user called (its Contact is ours in the dialog)
	req      *sip.Request
	tx       sip.ServerTransaction
	offer    *sdp.Session
	chosen   int    // the offer's audio stream (sdp.NegotiateOffer)
	seHeader string // the Session-Expires of our 2xx ("" without a session timer)
	// cancelled is closed when the caller's CANCEL arrives: sipgo answers it (200, and
	// 487 to the INVITE) at once, but the transaction ends (tx.Done) only after Timer I
	// or H, seconds later; the browser must stop ringing at the CANCEL.
	cancelled chan struct{}
}

// watchCancel closes in.cancelled when the INVITE is cancelled (or already was).
func (in *incoming) watchCancel() {
	in.cancelled = make(chan struct{})
	var once sync.Once
	stop := func(*sip.Request) { once.Do(func() { close(in.cancelled) }) }
	// OnCancel runs stop under the transaction's lock: it only closes a channel. false:
	// the transaction is cancelled or over already.
	if !in.tx.OnCancel(stop) {
		stop(nil)
	}
}

// isCancelled reports whether the caller cancelled the INVITE.
func (in *incoming) isCancelled() bool {
	select {
	case <-in.cancelled:
		return true
	default:
		return false
	}
}

// onInvite handles an INVITE: a re-INVITE in one of our dialogs, or a call to a
// registered user, which becomes a ringing player object of that user's browser.
func (a *Adapter) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		a.reject(tx, req, 400, "Bad Request")
		return
	}
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		a.onReInvite(req, tx)
		return
	}
	ctx := a.runContext()
	if ctx.Err() != nil || a.draining.Load() {
		// Shutting down: 503 lets the CSCF try another gateway instance (RFC 3263 section 4.3).
		a.reply(tx, req, 503, "Service Unavailable", "", nil)
		return
	}
	user, ok := a.calledUser(req, tx)
	if !ok {
		return // answered: not ours, or nobody reachable (edge_calls.go)
	}
	merge := mergeKey(req, user)
	if a.merged(req.CallID().Value(), merge) {
		a.reply(tx, req, 482, "Loop Detected", "", nil) // a forked copy of a call we have
		return
	}
	a.reply(tx, req, 100, "Trying", "", nil)
	player, err := a.playerOfUser(ctx, user)
	if err != nil {
		a.edge.Refused(edge.ReasonUnknownUser, sourceOf(req).Addr())
		a.log.Debug("incoming call for a user without a browser", "user", user, "call_id", req.CallID().Value(), "err", err)
		a.reply(tx, req, 404, "Not Found", "", nil)
		return
	}
	if len(req.Body()) == 0 {
		// We need the caller's offer: the media gateway's remote side comes from it.
		a.reject(tx, req, 488, "Not Acceptable Here (offer required)")
		return
	}
	offer, err := sdp.Parse(req.Body())
	if err != nil {
		a.reject(tx, req, 400, "Bad SDP")
		return
	}
	chosen, remote, err := sdp.NegotiateOffer(offer)
	if err != nil {
		a.reject(tx, req, 488, "Not Acceptable Here")
		return
	}
	svc, err := icsi.Identify(req)
	if err != nil {
		// A service we do not offer is refused, never answered as a plain MMTel call.
		a.log.Info("incoming call for an unsupported service", "user", user, "call_id", req.CallID().Value(), "err", err)
		a.reply(tx, req, 488, "Not Acceptable Here", "", nil,
			sip.NewHeader("Warning", `399 `+a.cfg.AdvertiseHost+` "`+warningText(err.Error())+`"`))
		return
	}
	cl, ok, err := a.claimIncoming(ctx, tx, player)
	if err != nil || !ok {
		a.log.Info("incoming call for a busy user", "user", user, "player", player, "call_id", req.CallID().Value(), "err", err)
		a.reply(tx, req, 486, "Busy Here", "", nil)
		return
	}
	releaseDialog, ok := a.openDialog(req)
	if !ok {
		a.release(ctx, cl)
		a.reply(tx, req, 486, "Busy Here", "", nil) // this untrusted source has calls enough
		return
	}
	c := a.newCall(ctx, cl, DirIn, req.CallID().Value())
	c.merge, c.svc, c.peer, c.releaseEdge = merge, svc, sourceOf(req).Addr(), releaseDialog
	if !a.addCall(c) {
		c.stop()
		if releaseDialog != nil {
			releaseDialog()
		}
		a.release(ctx, cl)
		if a.draining.Load() {
			a.reply(tx, req, 503, "Service Unavailable", "", nil)
			return
		}
		a.reply(tx, req, 486, "Busy Here", "", nil)
		return
	}
	c.help(c.keepLease)
	in := &incoming{user: user, req: req, tx: tx, offer: offer, chosen: chosen}
	in.watchCancel()
	c.runIn(c.ctx, in, remote)
}

// mergeKey identifies an initial INVITE to user for merged-request detection.
func mergeKey(req *sip.Request, user string) string {
	tag, _ := req.From().Params.Get("tag")
	return tag + " " + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10) + " " + user
}

// merged reports whether an incoming call of ours already has this INVITE (same Call-ID,
// From tag, CSeq and user called): a copy that reached us by another path after a proxy
// forked it, which RFC 3261 section 8.2.2.2 answers with 482. Our own outgoing leg with
// the same Call-ID is no merge: it is a call from one of our users to another, back
// through the CSCF, and the other user's leg is a call of its own.
func (a *Adapter) merged(callID, key string) bool {
	for _, c := range a.callsByID(callID) {
		if c.dir == DirIn && c.merge == key {
			return true
		}
	}
	return false
}

// playerOfUser returns the audio player address of the browser a SIP user is logged in
// with, from the users side's records (sipport.Users.ClientOf), not the DSM.
func (a *Adapter) playerOfUser(ctx context.Context, user string) (string, error) {
	if user == "" {
		return "", errors.New("no user in the request URI")
	}
	if err := store.ValidAddress(a.schema.UserAddress(user)); err != nil {
		return "", err
	}
	if a.users == nil {
		return "", errors.New("no users side: nobody is logged in")
	}
	client, err := a.users.ClientOf(ctx, user)
	if err != nil {
		return "", err
	}
	if client == "" {
		return "", errors.New("user has no browser client")
	}
	p := a.schema.PlayerAddress(client, "audio")
	if err := store.ValidAddress(p); err != nil {
		return "", err
	}
	return p, nil
}

// runIn rings the browser and completes or rejects the INVITE as the browser decides. It
// runs on the INVITE's handler goroutine (which the adapter's owner counts) until the
// INVITE transaction is done; an answered call then continues on a goroutine of its own.
func (c *call) runIn(ctx context.Context, in *incoming, remote sdp.Remote) {
	if !c.setupIn(ctx, in, remote) || !c.ring(ctx, in) {
		c.end()
		return
	}
	if !c.a.own.spawn(func() { defer c.end(); c.confirmed(ctx) }) {
		c.end() // Run is ending: the call is abandoned, for a takeover
	}
}

// rejectIn answers the INVITE with a failure and ends the call.
func (c *call) rejectIn(in *incoming, code int, reason string, res result, ops ...store.Op) {
	if !c.acting() {
		return // fenced: not a word; the caller's INVITE times out
	}
	c.mu.Lock()
	tag := c.d.LocalTag
	c.mu.Unlock()
	c.a.reply(in.tx, in.req, code, reason, tag, nil)
	c.finish(res, ops...)
}

// setupIn allocates the local termination, stores the dialog record, writes the player
// ringing and sends 180. It reports false when the call ended instead.
func (c *call) setupIn(ctx context.Context, in *incoming, remote sdp.Remote) bool {
	a, req := c.a, in.req
	if c.svc == icsi.PoC {
		err := c.openFloor()
		if err == nil {
			_, err = c.floorAnswer(req.Body())
		}
		if err != nil {
			c.log.Info("push-to-talk call refused", "err", err)
			c.rejectIn(in, 488, "Not Acceptable Here", resultBadSDP)
			return false
		}
	}
	local, err := a.mgw.AddLocal(ctx, LocalRequest{Player: c.player, CallID: c.callID(), Gated: c.ptt != nil})
	if err != nil {
		a.met.mgwErrors.WithLabelValues("add_local").Inc()
		c.log.Warn("add local termination failed", "err", err)
		c.rejectIn(in, 503, "Service Unavailable", resultMGWError)
		return false
	}
	fromTag, _ := req.From().Params.Get("tag")
	caller := nameAddr(req.From().DisplayName, req.From().Address)
	c.mu.Lock()
	c.local, c.remote = local, remote
	c.d = dialog{
		Player: c.player, Owner: a.cfg.Instance, Dir: DirIn, State: DialogEarly,
		CallID: c.d.CallID, LocalTag: sip.GenerateTagN(16), RemoteTag: fromTag, User: in.user,
		LocalURI: nameAddr(req.To().DisplayName, req.To().Address), RemoteURI: caller,
		LocalCSeq: 1 + rand.Uint32N(30000), RemoteCSeq: req.CSeq().SeqNo,
		RouteSet: routeSet(req, false), Target: contactTarget(req), Term: local.ID,
		Origin: sdp.Origin{Sess: rand.Uint64N(1 << 62), Version: 1, Addr: local.Addr}, Service: string(c.svc),
		InviteCSeq: req.CSeq().SeqNo, InviteSource: req.Source(), InviteTransport: req.Transport(),
	}
	for _, v := range req.GetHeaders("Via") {
		c.d.InviteVias = append(c.d.InviteVias, v.Value())
	}
	if c.d.Target == "" {
		c.d.Target = req.From().Address.String()
	}
	in.seHeader = c.sessionTimerFromRequest(req)
	d := c.d
	c.mu.Unlock()
	if err := a.saveDialog(ctx, &d); err != nil {
		if ctx.Err() != nil {
			return false // abandoned: the record may have landed, and the takeover answers
		}
		c.rejectIn(in, 500, "Server Internal Error", resultError)
		return false
	}
	c.mu.Lock()
	c.d.listed = true
	c.mu.Unlock()
	callerName, callerURI := callerOf(req)
	callerID := callerURI.String()
	if callerName != "" {
		callerID = callerName + " <" + callerID + ">"
	}
	err = c.commitClaiming(ctx,
		store.Set(a.f.playerState, stateRinging), store.Set(a.f.mgwState, stateConnecting),
		store.Set(a.f.caller, callerID), store.Set(a.f.callID, d.CallID),
		store.Set(a.f.remote, callerURI.String()), store.Set(a.f.service, string(c.svc)),
		store.Del(a.f.mgwURL), store.Del(a.f.sipStatus), store.Del(a.f.sipReason),
		store.Del(a.f.progress), store.Del(a.f.hold), store.Del(a.f.dtmf), store.Del(a.f.floor),
		store.Del(a.f.floorState), store.Del(a.f.floorTalker), store.Del(a.f.floorReason),
		store.Del(a.f.floorPosition), store.Del(a.f.floorDuration), store.Del(a.f.mediaQuality))
	if err == nil {
		err = a.commit(ctx, a.schema.Players.Index, store.Set(c.player, "audio"))
	}
	if err != nil {
		if ctx.Err() != nil {
			// Abandoned (Run ends, as in a crash): the commit may have landed without
			// its answer, so the player may ring. Ending the call here would delete the
			// dialog record and release the claim with the player left ringing, and the
			// takeover could then only mark it failed without answering the caller; left
			// alone, the takeover answers the caller 480 from the record.
			return false
		}
		c.log.Warn("write ringing player failed", "err", err)
		c.rejectIn(in, 500, "Server Internal Error", resultError)
		return false
	}
	c.log.Info("incoming call ringing", "caller", callerID)
	a.reply(in.tx, req, 180, "Ringing", d.LocalTag, nil, a.dialogContact(&d, req.Transport()))
	return true
}

// ring waits for the browser while the INVITE rings: it answers when the browser writes
// connecting, and ends the call when the browser refuses, the caller cancels, nobody
// answers in time or the drain starts. It reports whether the call was answered.
func (c *call) ring(ctx context.Context, in *incoming) bool {
	a := c.a
	timeout := time.NewTimer(a.cfg.InviteTimeout)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			return false // abandoned (crash or shutdown): the caller times out
		case <-in.cancelled:
			c.callerCancelled()
			return false
		case <-in.tx.Done():
			if ctx.Err() != nil {
				// Run's end closed the SIP stack, which ends its transactions: this is
				// the abandonment above, not the caller giving up.
				return false
			}
			c.callerCancelled()
			return false
		case <-a.drainC:
			// 480 rather than 503: the call reached the user, who is now unavailable;
			// a 503 this late would only make a proxy retry a call that already rang.
			c.log.Info("gateway shutting down; rejecting the ringing call")
			c.drained = true
			c.rejectIn(in, 480, "Temporarily Unavailable", resultDrained, a.shutdownOps()...)
			return false
		case <-timeout.C:
			c.log.Info("browser did not answer")
			c.rejectIn(in, 480, "Temporarily Unavailable", resultNoAnswer, a.failOps(480, "no answer")...)
			return false
		case <-c.wakeC:
			fl, ok := c.snapshot(ctx)
			if c.wantsEnd(fl, ok) {
				c.log.Info("browser rejected the call")
				code, reason := 486, "Busy Here"
				if ok && fl[a.f.playerState] == stateFailed {
					code, reason = 603, "Decline"
				}
				c.rejectIn(in, code, reason, resultDeclined, store.Set(a.f.mgwState, stateDisconnected))
				return false
			}
			if fl[a.f.playerState] == stateConnecting {
				return c.answerIn(ctx, in)
			}
		}
	}
}

// answerIn answers the ringing call with 200 OK once the browser wrote connecting:
// remote termination, media URL and states in one commit, then the ACK. false if the
// call ended instead.
func (c *call) answerIn(ctx context.Context, in *incoming) bool {
	a, req := c.a, in.req
	c.mu.Lock()
	local, remote, tag := c.local, c.remote, c.d.LocalTag
	c.mu.Unlock()
	if in.isCancelled() {
		c.callerCancelled()
		return false
	}
	url, err := a.mgw.AddRemote(ctx, local.ID, remote)
	if err != nil {
		if ctx.Err() != nil {
			return false // abandoned: the takeover answers the caller from the record
		}
		a.met.mgwErrors.WithLabelValues("add_remote").Inc()
		c.log.Warn("add remote termination failed", "err", err)
		c.rejectIn(in, 500, "Media Gateway Error", resultMGWError, a.failOps(500, "media gateway: "+err.Error())...)
		return false
	}
	if in.isCancelled() { // the answer crossed the CANCEL: no 200 can go out any more
		c.callerCancelled()
		return false
	}
	c.mu.Lock()
	body := c.withFloor(sdp.Answer(c.d.Origin, a.cfg.User, local.Addr, local.Port, in.offer, in.chosen, remote), true)
	c.answer = body
	c.d.State = DialogConfirmed
	c.d.Media = &remote
	// The INVITE's Vias stay in the record until the ACK (unacked, call_in_unacked.go): an
	// instance lost between this save and the 200 leaves a caller that never had the
	// answer, and the survivor that finds them answers the INVITE if its re-INVITE fails.
	d := c.d
	c.mu.Unlock()
	if err := c.commit(ctx,
		store.Expect(a.f.callID, d.CallID), store.Expect(a.f.playerState, stateConnecting),
		store.Set(a.f.mgwURL, url), store.Set(a.f.mgwState, stateConnected),
		store.Set(a.f.playerState, stateConnected), store.Del(a.f.progress)); err != nil {
		if ctx.Err() != nil {
			// Abandoned: the commit may have landed without its answer. Rejecting now
			// would write the player over and drop the record under the takeover.
			return false
		}
		c.log.Info("player changed before the answer was written; rejecting", "err", err)
		c.rejectIn(in, 487, "Request Terminated", resultCancelled, store.Set(a.f.mgwState, stateDisconnected))
		return false
	}
	if err := a.saveDialog(ctx, &d); err != nil && ctx.Err() != nil {
		return false // abandoned before our 200: the takeover goes by the record it finds
	}
	hdrs := []sip.Header{a.dialogContact(&d, req.Transport()), sip.NewHeader("Content-Type", "application/sdp"),
		sip.NewHeader("Allow", allowMethods), sip.NewHeader("Supported", "timer")}
	if in.seHeader != "" {
		hdrs = append(hdrs, sip.NewHeader("Session-Expires", in.seHeader), sip.NewHeader("Require", "timer"))
	}
	if hook := a.beforeAnswer.Load(); hook != nil {
		(*hook)(ctx)
	}
	if ctx.Err() != nil {
		return false // abandoned before our 200: the takeover goes by the record it finds
	}
	a.met.setup.Observe(time.Since(c.seenAt).Seconds())
	if !a.respond2xx(ctx, in.tx, req, tag, body, c.ackC, c.byeC, hdrs...) {
		if ctx.Err() != nil {
			return false // abandoned
		}
		if errors.Is(in.tx.Err(), sip.ErrTransactionCanceled) {
			c.callerCancelled() // the CANCEL came just before our 200, which was dropped
			return false
		}
		c.log.Warn("no ACK for our 200; hanging up")
		c.bye()
		c.finish(resultNoAck, a.failOps(408, "no ACK")...)
		return false
	}
	c.acked(ctx)
	c.log.Info("incoming call connected", "service", string(c.svc))
	c.startFloor()
	return true
}

// callerCancelled ends a call the caller cancelled before it was answered (sipgo has
// answered the CANCEL and the INVITE with 487): the browser sees it end at once.
func (c *call) callerCancelled() {
	c.log.Info("caller cancelled")
	c.finish(resultCallerCancelled, append(c.a.endOps(), store.Set(c.a.f.sipReason, "caller cancelled"))...)
}
