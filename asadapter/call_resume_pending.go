package asadapter

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A takeover during a re-INVITE in progress: the lost instance had sent a re-INVITE
// (hold, resume, a session refresh) and was lost before its final answer. The dialog
// record names it (ReinviteCSeq, saved before it went out), and the survivor:
//
//   - acknowledges it at once, in case its 2xx came to the lost instance, which died
//     before its ACK (a far end with no 2xx pending discards such an ACK: RFC 3261
//     section 17.2.3 sends an ACK that matches no server transaction to the core, which
//     finds no 2xx to acknowledge);
//   - sends its own re-INVITE, with a CSeq above, which the far end refuses while the
//     lost one is pending: 500 with Retry-After (RFC 3261 section 14.2; a far end that
//     answers 491 instead is retried the same way as glare); it is retried after the
//     wait the far end asked for, at most maxRetryAfter;
//   - acknowledges the lost re-INVITE once more after its own was answered 2xx: the far
//     end processed ours only after the lost one was over, so its 2xx, if it gave one,
//     has been sent by then and is still being retransmitted toward the lost instance
//     (for 64*T1, then the far end would end the dialog, RFC 3261 section 13.3.1.4);
//   - offers the direction the page asked for (hold_intent), not the one the lost
//     instance last had answered: the page's hold is honoured whether or not the lost
//     hold re-INVITE was answered.

// maxRetryAfter caps the wait of a 500's Retry-After before a retry: RFC 3261 section
// 14.2 has the far end choose between 0 and 10 s; a larger value is not that case, and
// the call should not stay unmoved for longer.
const maxRetryAfter = 10 * time.Second

// retryWait reports whether a final response to our re-INVITE asks for the same
// re-INVITE later, and after how long: 491 after the waits of RFC 3261 section 14.1
// (owner: we placed the call), 500 with Retry-After after its value (section 14.2).
func retryWait(res *sip.Response, owner bool) (time.Duration, bool) {
	switch res.StatusCode {
	case 491:
		return glareWait(owner), true
	case 500:
		h := res.GetHeader("Retry-After")
		if h == nil {
			return 0, false
		}
		d, err := parseRetryAfter(h.Value())
		if err != nil || d > maxRetryAfter {
			return 0, false
		}
		return d, true
	}
	return 0, false
}

// parseRetryAfter reads the delta-seconds of a Retry-After value (RFC 3261 section
// 20.33: "18000;duration=3600 (comment)"): the number before any comment or parameter.
func parseRetryAfter(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexAny(v, ";( \t"); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %.40q", ErrBadRetryAfter, v)
	}
	return time.Duration(n) * time.Second, nil
}

// lastAckFromRecord builds the ACK of the re-INVITE the lost instance had in progress
// (the dialog record's ReinviteCSeq), or nil.
func (c *call) lastAckFromRecord() *sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.d.ReinviteCSeq == 0 {
		return nil
	}
	dd := c.d
	dd.Contact = ""
	ack, err := c.a.requestWithCSeq(&dd, sip.ACK, c.d.ReinviteCSeq, nil, "")
	c.d.ReinviteCSeq = 0
	if err != nil {
		return nil
	}
	return ack
}

// ackLostReinvite sends (or sends again: one ACK, retransmitted) the ACK of the lost
// instance's re-INVITE; nil is nothing to send.
func (c *call) ackLostReinvite(ack *sip.Request) {
	if ack == nil || !c.acting() {
		return
	}
	if err := c.a.cli.WriteRequest(ack, prebuilt); err != nil {
		c.log.Warn("ACK of the lost instance's re-INVITE not sent", "err", err)
		return
	}
	c.log.Info("acknowledged the lost instance's re-INVITE", "cseq", ack.CSeq().SeqNo)
}
