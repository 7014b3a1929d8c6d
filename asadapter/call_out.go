package asadapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sdp"
	"dsmgw/store"
)

// An outgoing call: the browser wrote player_state connecting with a remote (or a
// conference); a worker's examine sees it and startOutgoing (call_out_start.go) claims
// the player, allocates the local termination, writes the call's start beside its dialog
// record and starts the call's goroutine, runOut: the INVITE (call_out_invite.go), the
// answer's media, and then the confirmed call (call_confirmed.go).

// conferenceDomain is the domain of a conference id written without one (Join).
func (a *Adapter) conferenceDomain(who caller) string {
	switch {
	case a.cfg.ConferenceDomain != "":
		return a.cfg.ConferenceDomain
	case who.user != "":
		if who.aor.Port != 0 {
			return who.aor.Host + ":" + strconv.Itoa(who.aor.Port)
		}
		return who.aor.Host
	}
	return a.cfg.Domain
}

// resolveTarget turns what the browser wrote as remote or conference into a SIP URI:
// a sip:/sips: URI as is, tel:+N as sip:+N@Domain;user=phone, user@host as sip:user@host
// and a bare user as sip:user@domain.
func (a *Adapter) resolveTarget(dest, domain string) (string, error) {
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
		s = "sip:" + dest + "@" + domain
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

// runOut drives an outgoing call from its INVITE (inv; fail instead ends a call that
// could not be prepared) to its end. When ctx (the call's: Run's, also ended when the
// call is fenced) ends, the call is abandoned wherever it is, for a takeover.
func (c *call) runOut(ctx context.Context, inv *sip.Request, fail func()) {
	defer c.end()
	if fail != nil {
		fail()
		return
	}
	if c.a.draining.Load() {
		// Nothing sent yet: no need to ring the far end only to cancel at once.
		c.drained = true
		c.finish(resultDrained, c.a.shutdownOps()...)
		return
	}
	out := c.invite(ctx, inv)
	if ctx.Err() != nil || c.inviteFailed(out) {
		return
	}
	if c.connectOut(ctx, out.res) {
		c.confirmed(ctx)
	}
}

// inviteFailed ends the call when the INVITE brought no usable 2xx: a final failure, a
// CANCEL decided before the answer, or a 2xx that crossed our CANCEL (which gets a BYE).
// It reports whether the call ended.
func (c *call) inviteFailed(out inviteOutcome) bool {
	a := c.a
	switch {
	case out.err != nil && c.drained && errors.Is(out.err, out.cancelled):
		c.log.Info("call cancelled by the drain", "err", out.err)
		c.finish(resultDrained, a.shutdownOps()...)
	case out.err != nil && out.hungUp:
		// The user's own hang-up: the player keeps the browser's disconnected, whatever
		// ended the INVITE transaction after our CANCEL, and loses the provisional
		// response's status (a "180 Ringing" left beside disconnected would mislead).
		c.log.Info("call cancelled by the browser", "err", out.err)
		c.finish(resultCancelled, store.Set(a.f.mgwState, stateDisconnected),
			store.Del(a.f.sipStatus), store.Del(a.f.sipReason))
	case out.err != nil:
		var se *SIPError
		if errors.As(out.err, &se) {
			c.log.Info("call failed", "status", se.Status, "reason", se.Reason)
			c.finish(resultRejected, a.failOps(se.Status, se.Reason)...)
		} else {
			c.log.Warn("INVITE failed", "err", out.err)
			c.finish(resultError, a.failOps(0, out.err.Error())...)
		}
	case out.cancelled != nil:
		// 2xx, ACKed: the browser hung up (or the drain or the timeout cancelled) while
		// the answer was on its way.
		c.bye()
		switch {
		case c.drained:
			c.finish(resultDrained, a.shutdownOps()...)
		case out.cancelled.Status == 487:
			c.finish(resultCancelled, store.Set(a.f.mgwState, stateDisconnected))
		default:
			c.finish(resultCancelled, a.failOps(out.cancelled.Status, out.cancelled.Reason)...)
		}
	default:
		return false
	}
	return true
}

// connectOut gives the media gateway the far end of the answer and writes the connected
// call (media URL and states in one commit); false, after a BYE, if the call ended instead.
//
// The confirmed dialog, with the negotiated media a takeover re-offers, is stored while
// the media gateway and the commit do their part, not before them: a takeover that
// finds the dialog still calling (the owner lost in between) cancels instead of
// continuing, as it did when the owner was lost between the ACK and the record's save,
// a window of the same round trip (docs/call-survival.md).
func (c *call) connectOut(ctx context.Context, res *sip.Response) bool {
	a := c.a
	ans, err := sdp.Parse(res.Body())
	var remote sdp.Remote
	if err == nil {
		remote, err = sdp.NegotiateAnswer(ans)
	}
	if err == nil {
		_, err = c.floorAnswer(res.Body())
	}
	if err != nil {
		c.log.Warn("unusable SDP answer; hanging up", "err", err)
		c.bye()
		c.finish(resultBadSDP, a.failOps(488, "Not Acceptable Here: "+err.Error())...)
		return false
	}
	c.mu.Lock()
	term := c.local.ID
	c.remote = remote
	c.d.Media = &remote
	d := c.d
	c.mu.Unlock()
	saved := make(chan error, 1)
	go func() { saved <- a.saveDialog(ctx, &d) }()
	url, mgwErr := a.mgw.AddRemote(ctx, term, remote)
	if mgwErr == nil {
		err = c.commit(ctx,
			store.Expect(a.f.callID, c.callID()), store.Expect(a.f.playerState, stateConnecting),
			store.Set(a.f.mgwURL, url), store.Set(a.f.mgwState, stateConnected),
			store.Set(a.f.playerState, stateConnected), store.Set(a.f.sipStatus, fmt.Sprint(res.StatusCode)),
			store.Set(a.f.sipReason, res.Reason), store.Del(a.f.progress))
	}
	if serr := <-saved; serr != nil {
		c.log.Warn("save dialog failed", "err", serr)
	}
	switch {
	case mgwErr != nil:
		a.met.mgwErrors.WithLabelValues("add_remote").Inc()
		c.log.Warn("add remote termination failed; hanging up", "err", mgwErr)
		c.bye()
		c.finish(resultMGWError, a.failOps(0, "media gateway: "+mgwErr.Error())...)
		return false
	case err != nil && ctx.Err() != nil:
		return false
	case err != nil:
		c.log.Info("player changed before the answer was written; hanging up", "err", err)
		c.bye()
		c.finish(resultCancelled, a.endOps()...)
		return false
	}
	a.met.setup.Observe(time.Since(c.seenAt).Seconds())
	c.log.Info("call connected", "remote_rtp", fmt.Sprintf("%s:%d", remote.Addr, remote.Port), "service", string(c.svc))
	c.startFloor()
	return true
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
		req.AppendHeader(a.dialogContact(d, nextHopTransport(req)))
		a.addVia(req)
	}
	if d.User != "" {
		// RFC 3325 section 9.2: the identity the user wants the CSCF to assert.
		req.AppendHeader(sip.NewHeader("P-Preferred-Identity", d.LocalURI))
	}
	if d.Service != "" {
		// The IMS communication service (TS 24.229 section 5.1.2A.1.1, TS 24.173, TS 24.379).
		for _, h := range icsi.Service(d.Service).RequestHeaders() {
			req.AppendHeader(h)
		}
	}
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	req.AppendHeader(sip.NewHeader("Allow", allowMethods))
	d.InviteCSeq = d.LocalCSeq
	d.InviteVia = req.Via().Value()
	return req, nil
}

// allowMethods is what we accept in a dialog.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, NOTIFY"
