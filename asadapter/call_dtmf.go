package asadapter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"dsmgw/store"
)

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
	if err := a.commit(ctx, c.player, store.Expect(a.f.dtmf, written), store.Del(a.f.dtmf)); err != nil &&
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
		res, err := c.a.do(ctx, req)
		if err != nil {
			return fmt.Errorf("INFO %c: %w", d, err)
		}
		if !res.IsSuccess() {
			return &SIPError{Status: res.StatusCode, Reason: res.Reason}
		}
	}
	return nil
}
