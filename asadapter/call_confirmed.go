package asadapter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/store"
)

// The confirmed call: both kinds of call end up here once the 2xx went through.

// confirmed runs an established call until it ends: the browser hanging up (BYE), the far
// end hanging up, DTMF written by the browser and session timers (the claim is renewed by
// the call's lease helper, lease.go). When the call's context ends (Run's ending, or the
// call fenced) the call is abandoned without a word (a crash, as far as the peers can
// tell), leaving it to a takeover.
func (c *call) confirmed(ctx context.Context) {
	a := c.a
	se := time.NewTimer(time.Hour)
	se.Stop()
	c.armSessionTimer(se)
	c.poke() // the browser may have written something while we were answering
	c.answered.Store(true)
	quality := time.NewTicker(qualityEvery)
	defer quality.Stop()
	for {
		// Each event is taken, then acted on between enter and leave: a call paused
		// meanwhile (pause.go) acts on it once it resumes, and not at all if fenced.
		var act func() (ended bool)
		select {
		case <-ctx.Done():
			return
		case <-quality.C:
			// Not an action between enter and leave: a pause must never wait for it or be
			// refused because of it (pause.go), and its one write is fenced anyway by the
			// claim's generation, as every commit of the call is.
			c.writeQuality(ctx)
			continue
		case why := <-c.moveC:
			act = func() bool {
				c.log.Info("moving the media to another media gateway", "why", why)
				return !c.reanchor(ctx, why)
			}
		case <-a.drainC:
			act = func() bool {
				c.log.Info("gateway shutting down; hanging up")
				c.drained = true
				c.bye()
				c.finish(resultDrained, a.shutdownOps()...)
				return true
			}
		case <-c.byeC:
			act = func() bool {
				c.log.Info("far end hung up")
				c.finish(resultRemoteBye, append(a.endOps(), store.Set(a.f.sipReason, "remote hangup"))...)
				return true
			}
		case <-c.wakeC:
			// The player is read before enter: a read acts on nothing, and a pause must
			// not be refused (and the call fenced) because a read was on its way to a
			// stalled Redis (pause.go). A change made during a pause wakes the call again.
			fl, ok := c.snapshot(ctx)
			act = func() bool { return c.woken(ctx, fl, ok) }
		case <-c.seC:
			act = func() bool { c.armSessionTimer(se); return false }
		case <-se.C:
			act = func() bool {
				if c.sessionTimerFired(ctx) {
					return true
				}
				c.armSessionTimer(se)
				return false
			}
		}
		if !c.enter(ctx) {
			return // fenced while paused: abandoned, as on a crash
		}
		ended := act()
		c.leave()
		if ended {
			return
		}
	}
}

// woken acts on a change of the player object (fl, ok as snapshot read them): the
// browser hanging up, DTMF, the floor, hold and a media URL to renew; true when the call
// ended.
func (c *call) woken(ctx context.Context, fl map[string]string, ok bool) bool {
	a := c.a
	if c.wantsEnd(fl, ok) {
		c.log.Info("browser hung up", "player_state", fl[a.f.playerState])
		c.bye()
		if ok && fl[a.f.playerState] == stateFailed {
			c.finish(resultFailed, store.Set(a.f.mgwState, stateFailed))
		} else {
			c.finish(resultLocalBye, store.Set(a.f.mgwState, stateDisconnected))
		}
		return true
	}
	if dt := fl[a.f.dtmf]; dt != "" {
		c.sendDTMF(ctx, dt)
	}
	c.floorIntent(ctx, fl)
	c.holdIntent(ctx, fl)
	c.renewMediaURL(ctx, fl)
	return false
}

// bye sends BYE in the dialog and waits (bounded) for its final response.
func (c *call) bye() {
	if !c.acting() {
		return
	}
	ctx, cancel := c.cleanupCtx()
	defer cancel()
	c.mu.Lock()
	req, err := c.a.request(&c.d, sip.BYE, nil, "")
	d := c.d
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("build BYE failed", "err", err)
		return
	}
	_ = c.a.saveDialog(ctx, &d)
	res, err := c.do(ctx, req)
	if err != nil {
		c.log.Warn("BYE failed", "err", err)
		return
	}
	c.log.Debug("BYE answered", "status", res.StatusCode)
}

// maxDTMFDigits bounds one write of the dtmf field (the media gateway queues at most 64).
const maxDTMFDigits = 64

// dtmfDigits keeps the valid DTMF characters of s (0-9 * # A-D), at most maxDTMFDigits.
func dtmfDigits(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if (r >= '0' && r <= '9') || r == '*' || r == '#' || (r >= 'A' && r <= 'D') {
			b.WriteRune(r)
			if b.Len() == maxDTMFDigits {
				break
			}
		}
	}
	return b.String()
}

// sendDTMF sends the digits the browser wrote in the dtmf field and consumes the field
// (deletes it if it still holds the same value), so writing the same digit again sends
// it again.
func (c *call) sendDTMF(ctx context.Context, written string) {
	a := c.a
	digits := dtmfDigits(written)
	var err error
	if digits != "" {
		if a.cfg.DTMF == DTMFInfo {
			err = c.sendInfoDTMF(ctx, digits)
		} else {
			c.mu.Lock()
			term := c.d.Term
			c.mu.Unlock()
			err = a.mgw.DTMF(ctx, term, digits)
			if err != nil {
				a.met.mgwErrors.WithLabelValues("dtmf").Inc()
			}
		}
	}
	if err != nil {
		c.log.Warn("send DTMF failed", "digits", digits, "err", err)
	} else {
		a.met.dtmfDigits.Add(float64(len(digits)))
		c.log.Info("sent DTMF", "digits", digits, "mode", a.cfg.DTMF)
	}
	if err := c.commit(ctx, store.Expect(a.f.dtmf, written), store.Del(a.f.dtmf)); err != nil &&
		!errors.Is(err, store.ErrExpectFailed) {
		c.log.Warn("consume dtmf field failed", "err", err)
	}
}

// sendInfoDTMF sends one INFO per digit (application/dtmf-relay, the de-facto format),
// waiting for each answer so the digits arrive in order.
func (c *call) sendInfoDTMF(ctx context.Context, digits string) error {
	for _, d := range digits {
		body := []byte(fmt.Sprintf("Signal=%c\r\nDuration=160\r\n", d))
		c.mu.Lock()
		req, err := c.a.request(&c.d, sip.INFO, body, "application/dtmf-relay")
		c.mu.Unlock()
		if err != nil {
			return err
		}
		res, err := c.do(ctx, req)
		if err != nil {
			return fmt.Errorf("INFO %c: %w", d, err)
		}
		if !res.IsSuccess() {
			return &SIPError{Status: res.StatusCode, Reason: res.Reason}
		}
	}
	return nil
}
