package asadapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028), only when the peer asks for them: we send "Supported:
// timer" and never a Session-Expires of our own. When the peer's answer (or offer) names
// a refresher, the refresher side re-INVITEs every half interval and the other side hangs
// up if no refresh arrived by the expiry.

// defaultMinSE is the smallest session interval accepted by default (RFC 4028 section 4:
// 90 s, the Min-SE every compliant peer assumes); anything less is treated as the minimum
// rather than refused, because we never send 422.
const defaultMinSE = 90 * time.Second

// parseSessionExpires reads "1800;refresher=uac" (0 when absent or malformed), raising
// the interval to minSE seconds.
func parseSessionExpires(v string, minSE int) (int, string) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, ""
	}
	num, params, _ := strings.Cut(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n <= 0 {
		return 0, ""
	}
	if n < minSE {
		n = minSE
	}
	refresher := ""
	for _, p := range strings.Split(params, ";") {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return n, refresher
}

// minSE is the configured minimum session interval in whole seconds.
func (a *Adapter) minSE() int { return int(a.cfg.MinSessionExpires / time.Second) }

func headerValue(m interface{ GetHeader(string) sip.Header }, names ...string) string {
	for _, n := range names {
		if h := m.GetHeader(n); h != nil {
			return h.Value()
		}
	}
	return ""
}

// sessionTimerFromResponse applies the Session-Expires of the 2xx to our INVITE. The
// caller holds c.mu.
func (c *call) sessionTimerFromResponse(res *sip.Response) {
	n, ref := parseSessionExpires(headerValue(res, "Session-Expires", "x"), c.a.minSE())
	if n == 0 {
		return
	}
	if ref == "" {
		ref = "uac"
	}
	c.d.SessionExpires, c.d.Refresher = n, ref
	c.scheduleSession(time.Now())
}

// sessionTimerFromRequest applies the Session-Expires of a request the peer sent (an
// INVITE to the browser, a re-INVITE or UPDATE refresh) and returns the header value for
// our 2xx, or "". We let the peer refresh (refresher=uac as the peer is the UAC of the
// refresh). The caller holds c.mu.
func (c *call) sessionTimerFromRequest(req *sip.Request) string {
	n, _ := parseSessionExpires(headerValue(req, "Session-Expires", "x"), c.a.minSE())
	if n == 0 {
		return ""
	}
	c.d.SessionExpires, c.d.Refresher = n, "peer"
	c.scheduleSession(time.Now())
	return fmt.Sprintf("%d;refresher=uac", n)
}

// sessionTimerFromReinvite applies the Session-Expires of the 2xx to a re-INVITE of ours
// (RFC 4028 section 7.4: "refresher=uac" is us, the UAC of this transaction); without one
// the session keeps its interval and refresher, counted again from now. The caller holds
// c.mu.
func (c *call) sessionTimerFromReinvite(res *sip.Response) {
	n, ref := parseSessionExpires(headerValue(res, "Session-Expires", "x"), c.a.minSE())
	if n == 0 && c.d.SessionExpires == 0 {
		return
	}
	if n > 0 {
		c.d.SessionExpires, c.d.Refresher = n, "peer"
		if ref == "" || ref == "uac" {
			c.d.Refresher = "uas" // us, in the terms of the dialog's INVITE (weRefresh)
			if c.d.Dir == DirOut {
				c.d.Refresher = "uac"
			}
		}
	}
	c.scheduleSession(time.Now())
	signal(c.seC) // the confirmed call re-arms its timer
}

// weRefresh reports whether we refresh the session: Refresher names the side in the
// terms of the INVITE that set up the dialog ("peer" when the far end refreshes). The
// caller holds c.mu.
func (c *call) weRefresh() bool {
	return (c.d.Refresher == "uac" && c.d.Dir == DirOut) || (c.d.Refresher == "uas" && c.d.Dir == DirIn)
}

// scheduleSession sets seNext or seDue from d. The caller holds c.mu.
func (c *call) scheduleSession(now time.Time) {
	n := time.Duration(c.d.SessionExpires) * time.Second
	c.seNext, c.seDue = time.Time{}, time.Time{}
	if c.weRefresh() {
		c.seNext = now.Add(n / 2)
		return
	}
	// RFC 4028 section 10: the other side sends BYE at expiry minus min(32 s, SE/3).
	c.seDue = now.Add(n - min(32*time.Second, n/3))
}

// armSessionTimer points t at the next session-timer event.
func (c *call) armSessionTimer(t *time.Timer) {
	c.mu.Lock()
	at := c.seNext
	if at.IsZero() {
		at = c.seDue
	}
	c.mu.Unlock()
	t.Stop()
	if !at.IsZero() {
		t.Reset(time.Until(at))
	}
}

// sessionTimerFired refreshes the session or ends it; true if the call ended.
func (c *call) sessionTimerFired(ctx context.Context) bool {
	c.mu.Lock()
	refresh := !c.seNext.IsZero() && !time.Now().Before(c.seNext)
	expired := !c.seDue.IsZero() && !time.Now().Before(c.seDue)
	c.mu.Unlock()
	switch {
	case refresh:
		if err := c.refresh(ctx); err != nil {
			if ctx.Err() != nil || !c.acting() {
				// Not the far end's doing: Run is ending (the instance stops) or the call
				// was fenced with its refresh in flight. The call is abandoned as on a
				// crash, for a takeover, which acknowledges the refresh if it was
				// answered (call_resume_pending.go); a BYE and a failed player here would
				// end a call another instance is about to continue.
				c.log.Info("session refresh cut short by the instance stopping; call left for a takeover", "err", err)
				return true
			}
			// RFC 4028 section 10: a refresh that times out or is refused ends the
			// session with BYE. The player shows the refusal's status (408 for a timeout).
			c.log.Warn("session refresh failed; hanging up", "err", err)
			status, reason := 408, "session refresh failed"
			var se *SIPError
			if errors.As(err, &se) {
				status, reason = se.Status, fmt.Sprintf("session refresh failed: %d %s", se.Status, se.Reason)
			}
			c.bye()
			c.finish(resultRefreshFailed, c.a.failOps(status, reason)...)
			return true
		}
		c.mu.Lock()
		c.scheduleSession(time.Now())
		c.mu.Unlock()
	case expired:
		c.log.Info("session expired without refresh; hanging up")
		c.bye()
		c.finish(resultSessionExpired, c.a.failOps(408, "session expired")...)
		return true
	}
	return false
}

// refresh sends a re-INVITE with our current SDP and Session-Expires, and ACKs its 2xx.
func (c *call) refresh(ctx context.Context) error {
	a := c.a
	if !c.acting() {
		return ErrFenced
	}
	c.mu.Lock()
	req, err := a.request(&c.d, sip.INVITE, c.answer, "application/sdp")
	if err == nil {
		// We refresh, and are the UAC of the refresh (RFC 4028 section 7.4).
		req.AppendHeader(sip.NewHeader("Session-Expires", fmt.Sprintf("%d;refresher=uac", c.d.SessionExpires)))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
		c.d.ReinviteCSeq = c.d.LocalCSeq // a takeover ACKs its 2xx
	}
	d := c.d
	c.mu.Unlock()
	if err != nil {
		return err
	}
	_ = a.saveDialog(ctx, &d)
	rctx, cancel := context.WithTimeout(ctx, cancelWait)
	defer cancel()
	res, err := c.do(rctx, req)
	if err != nil || !res.IsSuccess() {
		c.mu.Lock()
		c.d.ReinviteCSeq = 0 // no 2xx to acknowledge
		c.mu.Unlock()
	}
	if err != nil {
		return err
	}
	if !res.IsSuccess() {
		if res.StatusCode == 491 || res.StatusCode == 500 {
			return nil // glare: the peer's own re-INVITE refreshes too
		}
		return &SIPError{Status: res.StatusCode, Reason: res.Reason}
	}
	c.mu.Lock()
	ack, err := a.requestWithCSeq(&c.d, sip.ACK, req.CSeq().SeqNo, nil, "")
	c.d.ReinviteCSeq = 0
	// The 2xx names the interval from now on (RFC 4028 section 9: the UAC of a refresh
	// takes the Session-Expires of its 2xx); it was ignored, and a far end that lengthened
	// the interval was refreshed at the old pace.
	c.sessionTimerFromReinvite(res)
	d = c.d
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := a.cli.WriteRequest(ack, prebuilt); err != nil {
		return err
	}
	if err := a.saveDialog(ctx, &d); err != nil {
		c.log.Warn("save dialog failed", "err", err)
	}
	return nil
}
