package asadapter

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/emiago/sipgo/sip"

	"dsmgw/store"
)

// Progress of an outgoing call: each new kind of provisional response (100, 180, 183 or
// early media) is written to the player (progress, sip_status, sip_reason). The writes go
// through a queue served by a helper of the call, so the 200 that may follow at once is
// not held up by a Redis round trip, and they land in the order the responses came. Their
// expects keep a late write from landing after the call connected or ended.

// progressQueue holds the progress writes not yet committed. The call's goroutine pushes;
// one helper of the call at a time drains.
type progressQueue struct {
	mu       sync.Mutex   // guards pending and draining
	pending  [][]store.Op // in the order of the responses
	draining bool         // a helper is committing; it takes what is pushed meanwhile
}

// writeProgress queues the write of progress p of response res.
func (c *call) writeProgress(p string, res *sip.Response) {
	a := c.a
	ops := []store.Op{store.Expect(a.f.callID, c.callID()),
		store.Expect(a.f.mgwState, stateConnecting), store.Expect(a.f.playerState, stateConnecting),
		store.Set(a.f.progress, p), store.Set(a.f.sipStatus, fmt.Sprint(res.StatusCode)),
		store.Set(a.f.sipReason, res.Reason)}
	q := &c.progress
	q.mu.Lock()
	q.pending = append(q.pending, ops)
	start := !q.draining
	q.draining = true
	q.mu.Unlock()
	if start {
		c.help(c.drainProgress)
	}
}

// drainProgress commits the queued progress writes in order until none is left.
func (c *call) drainProgress(ctx context.Context) {
	q := &c.progress
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.draining = false
			q.mu.Unlock()
			return
		}
		ops := q.pending[0]
		q.pending = q.pending[1:]
		q.mu.Unlock()
		if err := c.commit(ctx, ops...); err != nil && !errors.Is(err, store.ErrExpectFailed) && ctx.Err() == nil {
			c.log.Warn("write progress failed", "err", err)
		}
	}
}

// progressOf is the progress value of a provisional response.
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
	if c.d.State == DialogCalling {
		c.d.State = DialogEarly
		c.d.RemoteTag = tag
	}
	c.mu.Unlock()
}
