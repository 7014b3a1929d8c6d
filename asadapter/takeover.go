package asadapter

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"

	"dsmgw/store"
)

// reasonInstanceLost is what the browser sees when its call's gateway instance died.
const reasonInstanceLost = "gateway instance lost"

// maybeTakeover ends a call whose owner died: nobody holds its claim (the lease expired)
// but its dialog record or its player object still shows it live. The new owner sends
// BYE (or CANCEL before an answer) from the stored dialog, deletes the termination and
// marks the player failed.
func (a *Adapter) maybeTakeover(ctx context.Context, player string) {
	if a.callFor(player) != nil {
		return
	}
	holder, err := a.claimHolder(ctx, player)
	if err != nil || holder != "" {
		return
	}
	ok, err := a.claim(ctx, player)
	if err != nil || !ok {
		return
	}
	defer a.release(ctx, player)
	if a.callFor(player) != nil {
		return
	}
	d, err := a.loadDialog(ctx, player)
	if err != nil && !errors.Is(err, ErrNoDialog) {
		a.log.Warn("takeover: load dialog failed", "player", player, "err", err)
		return
	}
	snap, serr := a.st.Snapshot(ctx, player)
	if d == nil {
		// No dialog: the owner died before storing one (or it was already cleaned up).
		if serr != nil {
			return
		}
		fl := snap.Fields
		if !isLive(fl[a.f.mgwState]) && fl[a.f.playerState] != stateRinging {
			return
		}
		ops := append([]store.Op{store.Expect(a.f.callID, fl[a.f.callID]),
			store.Expect(a.f.mgwState, fl[a.f.mgwState])}, a.failOps(0, reasonInstanceLost)...)
		ops = append(ops, store.Del(a.f.mgwURL))
		if err := a.commit(ctx, player, ops...); err == nil {
			a.met.takeovers.Inc()
			a.log.Info("marked a call of a lost instance failed", "player", player, "call_id", fl[a.f.callID])
		}
		return
	}
	log := a.log.With("player", player, "call_id", d.CallID, "owner", d.Owner)
	log.Info("taking over the call of a lost instance", "state", d.State)
	cctx, cancel := a.cleanupCtx()
	defer cancel()
	switch {
	case d.State == DialogConfirmed:
		req, err := a.request(d, sip.BYE, nil, "")
		if err != nil {
			log.Warn("takeover: build BYE failed", "err", err)
			break
		}
		// The BYE's answer is only logged: marking the player must not wait for a far end
		// that may be gone too (the dialog record is deleted below, so nothing retries).
		// When Run ends meanwhile, the BYE is given up with everything else.
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
	case d.Dir == DirOut && d.InviteVia != "":
		if req, err := a.cancelFromDialog(d); err == nil {
			_ = a.cli.WriteRequest(req, prebuilt)
			log.Info("takeover: sent CANCEL")
		}
	}
	if d.Term != "" {
		if err := a.mgw.Delete(cctx, d.Term); err != nil {
			log.Warn("takeover: delete termination failed", "term", d.Term, "err", err)
		}
	}
	if serr == nil && snap.Fields[a.f.callID] == d.CallID {
		ops := append([]store.Op{store.Expect(a.f.callID, d.CallID)}, a.failOps(0, reasonInstanceLost)...)
		ops = append(ops, store.Del(a.f.mgwURL), store.Del(a.f.progress))
		if err := a.commit(cctx, player, ops...); err != nil {
			log.Warn("takeover: mark player failed", "err", err)
		}
	}
	a.deleteDialog(cctx, player)
	a.met.takeovers.Inc()
	a.met.results.WithLabelValues(string(resultTakenOver)).Inc()
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
