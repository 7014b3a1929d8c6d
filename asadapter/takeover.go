package asadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/store"
)

// Takeover: the claim of a call lapsed (its instance was killed, or cut off from Redis
// and fenced, lease.go) while its dialog record or its player still shows it live. The
// lease watcher (leasewatch.go) or a rescan brings the player here, on every instance;
// the one that takes the claim decides what the call needs:
//
//   - an answered call the browser still wants goes on here: a new termination on our
//     media gateway and a re-INVITE in the same dialog that moves the media to it
//     (call_resume.go);
//   - an incoming call still ringing gets a final 480 from here, sent along the stored
//     Via headers: the INVITE's server transaction died with its instance, and a 2xx sent
//     in its name from here would be retransmitted and ACKed outside any transaction we
//     hold; the caller may call again, and the player shows why;
//   - an outgoing call not yet answered is cancelled from the stored INVITE (its answer
//     would go to the lost instance's Via) and the player shows why;
//   - a call the browser hung up meanwhile gets its BYE from here.
//
// Every commit of a takeover expects the player's claim_gen of the lost owner and writes
// ours, so whatever the lost owner still had on its way is refused from then on.

// reasonInstanceLost is what the browser sees when its call's gateway instance died and
// the call could not go on.
const reasonInstanceLost = "gateway instance lost"

// maybeTakeover takes the claim of a player whose owner's claim lapsed and does what the
// call needs (see above). Nothing happens when an instance holds the claim.
func (a *Adapter) maybeTakeover(ctx context.Context, player string) {
	if a.callFor(player) != nil || !a.takingNew() {
		return
	}
	holder, err := a.claimHolder(ctx, player)
	if holder != "" {
		// Held again (a lapsed claim its owner restored, lease_renew.go): read it again
		// when it can next expire.
		a.leases.watch(player, time.Now())
	}
	if err != nil || holder != "" {
		return
	}
	release, ok := a.takeoverSlot(player) // takeover_sched.go
	if !ok {
		return
	}
	defer func() { release() }()
	cl, ok, err := a.claim(ctx, player)
	if err != nil || !ok {
		return
	}
	if a.callFor(player) != nil {
		a.yield(ctx, cl)
		return
	}
	d, err := a.loadDialog(ctx, player)
	if err != nil && !errors.Is(err, ErrNoDialog) {
		a.log.Warn("takeover: load dialog failed", "player", player, "err", err)
		a.yield(ctx, cl)
		return
	}
	snap, err := a.st.Snapshot(ctx, player)
	if err != nil {
		a.log.Warn("takeover: read player failed", "player", player, "err", err)
		a.yield(ctx, cl)
		return
	}
	fl := snap.Fields
	if d == nil {
		// No dialog: the owner died before storing one (or it was already cleaned up).
		a.failNoDialog(ctx, cl, fl)
		a.release(ctx, cl)
		return
	}
	if fl[a.f.callID] == d.CallID && a.genAtLeast(fl, cl.gen) {
		// Our claim lapsed while we were getting here (this process was not scheduled
		// for a lease), and a later owner already wrote its generation: the commits below
		// expect what we read, so they would write our lower generation over its own and
		// hand the call back to a stale owner.
		a.log.Info("takeover: a newer owner holds the call; giving up our stale claim", "player", player,
			"call_id", d.CallID, "generation", cl.gen, "player_generation", fl[a.f.claimGen])
		a.yield(ctx, cl)
		return
	}
	if d.State == DialogConfirmed && fl[a.f.callID] == d.CallID && fl[a.f.mgwState] == stateConnected &&
		(fl[a.f.playerState] == stateConnected || fl[a.f.playerState] == stateConnecting) {
		a.resume(ctx, cl, d, fl, release) // the claim and the slot pass to the call
		release = func() {}
		return
	}
	defer a.release(ctx, cl)
	log := a.log.With("player", player, "call_id", d.CallID, "owner", d.Owner)
	log.Info("ending the call of a lost instance", "state", d.State)
	cctx, cancel := a.cleanupCtx()
	defer cancel()
	ours := fl[a.f.callID] == d.CallID
	ops := []store.Op{store.Expect(a.f.callID, d.CallID), a.expectGen(fl), store.Set(a.f.claimGen, cl.genString())}
	switch {
	case d.State == DialogConfirmed:
		a.byeLost(d, log)
		if d.Dir == DirIn && len(d.InviteVias) > 0 {
			// The caller may never have had the 200 (call_in_unacked.go).
			a.refuseRinging(a.runContext(), d, log)
		}
		// The browser hung up meanwhile (or the player moved on): the call ends as it
		// asked; otherwise it cannot go on.
		switch {
		case ours && fl[a.f.playerState] == stateFailed:
			ops = append(ops, store.Set(a.f.mgwState, stateFailed))
		case ours && fl[a.f.playerState] == stateDisconnected:
			ops = append(ops, store.Set(a.f.mgwState, stateDisconnected))
		default:
			ops = append(ops, a.failOps(0, reasonInstanceLost)...)
		}
	case d.Dir == DirOut && d.InviteVia != "":
		if req, err := a.cancelFromDialog(d); err == nil {
			_ = a.cli.WriteRequest(req, prebuilt)
			log.Info("takeover: sent CANCEL")
		}
		ops = append(ops, a.failOps(0, reasonInstanceLost)...)
	case d.Dir == DirIn && len(d.InviteVias) > 0:
		// Run's context, not cctx: the 480's retransmissions outlive this function.
		a.refuseRinging(a.runContext(), d, log)
		ops = append(ops, a.failOps(480, reasonInstanceLost)...)
	default:
		ops = append(ops, a.failOps(0, reasonInstanceLost)...)
	}
	if d.Term != "" {
		if err := a.mgw.Delete(cctx, d.Term); err != nil {
			log.Warn("takeover: delete termination failed", "term", d.Term, "err", err)
		}
	}
	if ours {
		ops = append(ops, store.Del(a.f.mgwURL), store.Del(a.f.progress))
		if err := a.commit(cctx, player, ops...); err != nil {
			log.Warn("takeover: write the call's end failed", "err", err)
		}
	}
	a.deleteDialog(cctx, player)
	a.met.takeovers.WithLabelValues("ended").Inc()
	a.met.results.WithLabelValues(string(resultTakenOver)).Inc()
}

// failNoDialog marks failed a player left live by an owner that died before it stored a
// dialog record.
func (a *Adapter) failNoDialog(ctx context.Context, cl claimed, fl map[string]string) {
	if !isLive(fl[a.f.mgwState]) && fl[a.f.playerState] != stateRinging {
		return
	}
	ops := append([]store.Op{store.Expect(a.f.callID, fl[a.f.callID]), store.Expect(a.f.mgwState, fl[a.f.mgwState]),
		a.expectGen(fl), store.Set(a.f.claimGen, cl.genString())}, a.failOps(0, reasonInstanceLost)...)
	ops = append(ops, store.Del(a.f.mgwURL))
	if err := a.commit(ctx, cl.player, ops...); err == nil {
		a.met.takeovers.WithLabelValues("ended").Inc()
		a.log.Info("marked a call of a lost instance failed", "player", cl.player, "call_id", fl[a.f.callID])
	}
}

// genAtLeast reports whether the player shows a claim generation of gen or above.
func (a *Adapter) genAtLeast(fl map[string]string, gen int64) bool {
	g, err := strconv.ParseInt(fl[a.f.claimGen], 10, 64)
	return err == nil && g >= gen
}

// expectGen expects the claim generation a player shows (absent when it shows none).
func (a *Adapter) expectGen(fl map[string]string) store.Op {
	if g, ok := fl[a.f.claimGen]; ok {
		return store.Expect(a.f.claimGen, g)
	}
	return store.ExpectAbsent(a.f.claimGen)
}

// byeLost sends BYE in a stored dialog. Its answer is only logged: marking the player must
// not wait for a far end that may be gone too (the dialog record is deleted by the caller,
// so nothing retries). When Run ends meanwhile, the BYE is given up with everything else.
func (a *Adapter) byeLost(d *dialog, log *slog.Logger) {
	dd := *d
	dd.LocalCSeq += takeoverCSeqStep
	dd.Contact = "" // the lost instance's registered contact is not ours
	req, err := a.request(&dd, sip.BYE, nil, "")
	if err != nil {
		log.Warn("takeover: build BYE failed", "err", err)
		return
	}
	a.own.spawn(func() {
		bctx, cancel := context.WithTimeout(a.runContext(), cleanupTimeout)
		defer cancel()
		res, err := a.do(bctx, d.User, req)
		if err != nil {
			log.Warn("takeover: BYE got no answer", "err", err)
			return
		}
		log.Info("takeover: BYE answered", "status", res.StatusCode)
	})
}

// refuseRinging answers an incoming INVITE that rang on the lost instance with 480,
// along its stored Via headers to where it came from. Nothing acknowledges it to us (the
// ACK of a failure goes hop by hop to the lost instance's address), so it is sent three
// times at Timer G's first intervals, as a transaction would have retransmitted it.
func (a *Adapter) refuseRinging(ctx context.Context, d *dialog, log *slog.Logger) {
	res, err := a.responseFromDialog(d, 480, "Temporarily Unavailable")
	if err != nil {
		log.Warn("takeover: build 480 failed", "err", err)
		return
	}
	a.own.spawn(func() {
		for _, wait := range []time.Duration{0, timerT1, 2 * timerT1} {
			select {
			case <-ctx.Done():
				return
			case <-a.runContext().Done():
				return
			case <-time.After(wait):
			}
			if err := a.writeResponseTo(res, d); err != nil {
				log.Warn("takeover: send 480 failed", "err", err)
				return
			}
		}
	})
	log.Info("takeover: refused the ringing call with 480")
}

// writeResponseTo sends a response to the INVITE of a stored dialog to where the INVITE
// came from. Over UDP it goes from a socket of its own: the SIP stack sends responses
// only on connections it has seen a message on, and this instance never saw that INVITE;
// the previous hop matches a response by its Via branch, not by its source. Over TCP or
// TLS the INVITE's connection died with its instance, and the stack's answer stands.
func (a *Adapter) writeResponseTo(res *sip.Response, d *dialog) error {
	if !strings.EqualFold(d.InviteTransport, "udp") {
		return a.srv.WriteResponse(res)
	}
	conn, err := net.Dial("udp", d.InviteSource)
	if err != nil {
		return fmt.Errorf("asadapter: response to %s: %w", d.InviteSource, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(res.String())); err != nil {
		return fmt.Errorf("asadapter: response to %s: %w", d.InviteSource, err)
	}
	return nil
}

// responseFromDialog rebuilds a final response to the incoming INVITE of a stored dialog.
func (a *Adapter) responseFromDialog(d *dialog, code int, reason string) (*sip.Response, error) {
	hp := sip.HeadersParser(sip.DefaultHeadersParser())
	res := sip.NewResponse(code, reason)
	for _, v := range d.InviteVias {
		hs, err := hp.ParseHeader(nil, []byte("Via: "+v))
		if err != nil || len(hs) == 0 {
			return nil, errors.New("asadapter: stored Via unusable")
		}
		for _, h := range hs {
			res.AppendHeader(h)
		}
	}
	from, err := addrHeader(d.RemoteURI, d.RemoteTag)
	if err != nil {
		return nil, err
	}
	to, err := addrHeader(d.LocalURI, d.LocalTag)
	if err != nil {
		return nil, err
	}
	res.AppendHeader(&sip.FromHeader{DisplayName: from.DisplayName, Address: from.Address, Params: from.Params})
	res.AppendHeader(&sip.ToHeader{DisplayName: to.DisplayName, Address: to.Address, Params: to.Params})
	cid := sip.CallIDHeader(d.CallID)
	res.AppendHeader(&cid)
	res.AppendHeader(&sip.CSeqHeader{SeqNo: d.InviteCSeq, MethodName: sip.INVITE})
	res.SetBody(nil)
	res.SetDestination(d.InviteSource)
	res.SetTransport(strings.ToUpper(d.InviteTransport))
	return res, nil
}

// cancelFromDialog rebuilds the CANCEL of a stored outgoing INVITE: its responses go to
// the dead instance's Via, which is fine: we only need the far end to stop ringing.
func (a *Adapter) cancelFromDialog(d *dialog) (*sip.Request, error) {
	hs, err := sip.HeadersParser(sip.DefaultHeadersParser()).ParseHeader(nil, []byte("Via: "+d.InviteVia))
	if err != nil || len(hs) == 0 {
		return nil, errors.New("asadapter: stored Via unusable")
	}
	dd := *d
	dd.Target = d.InviteURI
	dd.RemoteTag = ""
	req, err := a.requestWithCSeq(&dd, sip.CANCEL, d.InviteCSeq, nil, "")
	if err != nil {
		return nil, err
	}
	if r := a.proxyRoute(); r != nil {
		req.PrependHeader(r)
		a.setSource(req) // the first hop changed
	}
	req.RemoveHeader("Via")
	req.PrependHeader(hs[0])
	return req, nil
}

// serviceOfDialog is the IMS service a stored dialog was set up with.
func serviceOfDialog(d *dialog) icsi.Service {
	s, err := icsi.Parse(d.Service)
	if err != nil {
		return icsi.MMTel
	}
	return s
}
