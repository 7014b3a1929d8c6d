package asadapter

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// The start of an outgoing call: the claim, then the local termination and the INVITE,
// prepared before anything is written, then the start commit and the dialog record sent
// to Redis at once; the call's goroutine (runOut, call_out.go) sends the INVITE, only
// after both landed.

// startOutgoing claims a player that asks for a call (fl: its fields, read or as the
// feed's change left them, dispatch.go) and starts the call's goroutine.
func (a *Adapter) startOutgoing(ctx context.Context, player string, fl map[string]string) {
	if !a.takingNew() {
		return // left to the instances that stay
	}
	who := a.callerIdentity(ctx, player)
	binding, held, elsewhere := a.bindingOf(ctx, who.user)
	if elsewhere {
		// The user is registered through another instance: its calls go there, where
		// the registered contact leads (it claims the player on the same wake-up; if it
		// died, another instance registers the user anew and a rescan finds the player).
		return
	}
	cl, ok, err := a.claim(ctx, player)
	if err != nil {
		a.log.Warn("claim failed; the rescan retries", "player", player, "err", err)
		return
	}
	if !ok {
		return // another instance handles it
	}
	svc, serr := a.serviceOf(fl)
	dest, domain := fl[a.f.remote], a.cfg.Domain
	if dest == "" {
		dest, domain = fl[a.f.conference], a.conferenceDomain(who)
		if svc == icsi.PoC && a.cfg.TalkGroupDomain != "" {
			domain = a.cfg.TalkGroupDomain
		}
	}
	callID := randHex(16) + "@" + a.cfg.Domain
	target, terr := a.resolveTarget(dest, domain)
	// The start lands only on the player the call was built from: the state that asks for
	// a call and every field read for it (fl may be the view of a change, not a read).
	expects := make([]store.Op, 0, nStartFields)
	for _, f := range a.startFields() {
		if v, ok := fl[f]; ok {
			expects = append(expects, store.Expect(f, v))
		} else {
			expects = append(expects, store.ExpectAbsent(f))
		}
	}
	ops := append(slices.Clip(expects),
		store.Set(a.f.mgwState, stateConnecting), store.Set(a.f.callID, callID),
		store.Del(a.f.sipStatus), store.Del(a.f.sipReason), store.Del(a.f.mgwURL),
		store.Del(a.f.progress), store.Del(a.f.hold), store.Del(a.f.holdIntent), store.Del(a.f.caller),
		store.Del(a.f.mediaQuality), store.Set(a.f.claimGen, cl.genString()),
	)
	if terr == nil && serr != nil {
		// Never a silent MMTel call for a service we do not offer.
		terr = serr
		ops = append(slices.Clip(expects), a.failOps(488, "Not Acceptable Here: "+serr.Error())...)
		ops = append(ops, store.Set(a.f.callID, callID))
	} else if terr != nil {
		ops = append(slices.Clip(expects), a.failOps(0, "bad remote: "+terr.Error())...)
		ops = append(ops, store.Set(a.f.callID, callID))
	}
	if terr != nil {
		if err := a.commit(ctx, player, ops...); err != nil {
			a.release(ctx, cl)
			if !errors.Is(err, store.ErrExpectFailed) {
				a.log.Warn("start call failed; the rescan retries", "player", player, "err", err)
			}
			return
		}
		a.release(ctx, cl)
		a.log.Info("refused a call", "player", player, "remote", dest, "service", fl[a.f.service], "err", terr)
		return
	}
	c := a.newCall(ctx, cl, DirOut, callID)
	c.who, c.svc = who, svc
	if held {
		c.mu.Lock()
		c.d.Contact = binding.Contact.String()
		c.mu.Unlock()
	}
	inv, fail := c.prepareOut(ctx, target, fl[a.f.encoding])
	landed, saveErr := c.start(ctx, ops, inv != nil)
	if !landed {
		return
	}
	if saveErr != nil {
		inv, fail = nil, func() {
			c.log.Warn("save dialog failed", "err", saveErr)
			c.finish(resultError, a.failOps(0, "gateway storage error")...)
		}
	}
	if !a.addCall(c) {
		if a.draining.Load() {
			c.finish(resultDrained, a.shutdownOps()...)
		} else {
			c.finish(resultBusy, a.failOps(503, "gateway busy")...)
		}
		c.end()
		return
	}
	c.help(c.keepLease)
	if !a.own.spawn(func() { c.runOut(c.ctx, inv, fail) }) {
		c.end() // Run is ending: the call is abandoned before it began, for a takeover
	}
}

// prepareOut allocates the local termination and builds the dialog, our offer and the
// INVITE, before the call's start is written (start stores the dialog record beside it).
// It returns the INVITE, or what ends the call instead (after the start landed): a
// failure written to the player, or, when ctx ended, nothing (the call is abandoned, for
// a takeover).
func (c *call) prepareOut(ctx context.Context, target, encoding string) (*sip.Request, func()) {
	a := c.a
	if c.svc == icsi.PoC {
		if err := c.openFloor(); err != nil {
			return nil, func() {
				c.log.Warn("no floor channel", "err", err)
				c.finish(resultError, a.failOps(503, "Service Unavailable: "+err.Error())...)
			}
		}
	}
	local, err := a.mgw.AddLocal(ctx, LocalRequest{Player: c.player, CallID: c.callID(), Gated: c.ptt != nil})
	if err != nil {
		if ctx.Err() != nil {
			return nil, c.stopFloor
		}
		return nil, func() {
			a.met.mgwErrors.WithLabelValues("add_local").Inc()
			c.log.Warn("add local termination failed", "err", err)
			c.finish(resultMGWError, a.failOps(0, "media gateway: "+err.Error())...)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.local = local
	c.d = dialog{
		Player: c.player, Owner: a.cfg.Instance, Dir: DirOut, State: DialogCalling,
		CallID: c.d.CallID, LocalTag: sip.GenerateTagN(16), User: c.who.user, Contact: c.d.Contact,
		LocalURI: nameAddr(c.who.display, c.who.aor), RemoteURI: "<" + target + ">",
		LocalCSeq: 1 + rand.Uint32N(30000), Target: target, InviteURI: target, Term: local.ID,
		Origin: sdp.Origin{Sess: rand.Uint64N(1 << 62), Version: 1, Addr: local.Addr}, Service: string(c.svc),
	}
	offer := c.withFloor(sdp.Offer(c.d.Origin, a.cfg.User, local.Addr, local.Port, encoding, sdp.SendRecv), false)
	c.answer = offer
	inv, err := a.inviteRequest(&c.d, offer)
	if err != nil {
		return nil, func() {
			c.log.Warn("build INVITE failed", "err", err)
			c.finish(resultError, a.failOps(0, err.Error())...)
		}
	}
	return inv, nil
}

// start writes the call's start (ops, which take the player for it) and, when save, stores
// its dialog record, both at once: one round trip of waiting instead of two. The INVITE
// goes out only after both landed, so a takeover finds the record of every INVITE sent
// (docs/call-survival.md). A record stored for a start that did not land names a call the
// player does not show: a takeover would cancel an INVITE never sent and write nothing,
// and this instance, which holds the claim meanwhile, deletes it at once (undo). landed
// is false, with the call undone, when the start did not land; serr is the record's
// failure, which the caller reports.
func (c *call) start(ctx context.Context, ops []store.Op, save bool) (landed bool, serr error) {
	a := c.a
	saved := make(chan error, 1)
	if save {
		c.mu.Lock()
		d := c.d
		c.mu.Unlock()
		go func() { saved <- a.saveDialog(ctx, &d) }()
	}
	err := a.commit(ctx, c.player, ops...)
	if save {
		serr = <-saved
	}
	if err != nil {
		if !errors.Is(err, store.ErrExpectFailed) {
			a.log.Warn("start call failed; the rescan retries", "player", c.player, "err", err)
		}
		c.undo(save)
		return false, nil
	}
	if save && serr == nil {
		c.mu.Lock()
		c.d.listed = true
		c.mu.Unlock()
	}
	return true, serr
}

// undo takes back what a call that did not start holds: its termination, the dialog
// record when one was sent (saved), the claim and the call's own goroutines.
func (c *call) undo(saved bool) {
	a := c.a
	ctx, cancel := a.cleanupCtx()
	defer cancel()
	c.mu.Lock()
	term := c.d.Term
	c.mu.Unlock()
	if term != "" {
		if err := a.mgw.Delete(ctx, term); err != nil {
			a.met.mgwErrors.WithLabelValues("delete").Inc()
			c.log.Warn("delete termination failed", "term", term, "err", err)
		}
	}
	if saved {
		a.deleteDialog(ctx, c.player)
	}
	a.release(ctx, c.cl)
	c.end()
}
