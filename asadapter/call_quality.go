package asadapter

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"dsmgw/mediagw"
	"dsmgw/store"
)

// The media quality of a connected call, for the page: the media gateway's counters of
// the call's termination (GET /v1/terminations/{id}, which needs the media gateway's
// secret the page never holds), polled by the adapter that owns the call and written to
// the player's media_quality field in compact JSON. The page's worklet measures what
// reaches the browser; these say where the rest went: lost between the far end and the
// gateway, lost by the far end (its RTCP report), or dropped by the gateway.

// qualityEvery is how often a connected call reads its termination's counters: a person
// looking at the quality line sees a change within a few seconds, and one small local
// request every 2 s per call costs nothing next to 50 RTP packets a second each way.
const qualityEvery = 2 * time.Second

// qualityTimeout bounds one reading and writing of the quality: the call's loop waits for
// it, and a figure that cannot be had at once is not worth holding the call's events for.
const qualityTimeout = time.Second

// MediaQuality is the JSON of the media_quality field: In about the far end's RTP as
// the media gateway received it (RFC 3550 receive statistics), Out about ours as the far
// end reports it (its last RTCP report block; absent until it sends one), Drops the
// packets the media gateway discarded that carried audio someone should have heard
// (malformed, from a foreign source, with no page attached, a full queue...; not those a
// hold, a closed push-to-talk gate or DTMF discard on purpose).
type MediaQuality struct {
	InLost     int64   `json:"in_lost"`
	InExpected uint64  `json:"in_expected"`
	InJitterMS float64 `json:"in_jitter_ms"`
	// OutLost and OutJitterMS are absent before the far end's first report.
	OutLost     *int32   `json:"out_lost,omitempty"`
	OutJitterMS *float64 `json:"out_jitter_ms,omitempty"`
	Drops       uint64   `json:"drops"`
}

// qualityOf sums up a termination's counters.
func qualityOf(k mediagw.Counters) MediaQuality {
	var q MediaQuality
	if r := k.FromUDP; r != nil {
		q.InLost, q.InExpected, q.InJitterMS = max(r.Lost, 0), r.Expected, round1(r.JitterMS)
	}
	if r := k.RemoteReport; r != nil {
		lost, jit := r.CumulativeLost, round1(r.JitterMS)
		q.OutLost, q.OutJitterMS = &lost, &jit
	}
	for reason, n := range k.Drops {
		switch reason {
		case mediagw.DropHeld, mediagw.DropGated, mediagw.DropDTMF:
		default:
			q.Drops += n
		}
	}
	return q
}

// round1 keeps one decimal: the field changes when the figure a person reads does.
func round1(v float64) float64 { return math.Round(v*10) / 10 }

// writeQuality reads the call's counters and writes them when they changed, while a page
// is attached to the termination. A failure
// only logs: the next tick tries again, and the call goes on either way.
func (c *call) writeQuality(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, qualityTimeout)
	defer cancel()
	c.mu.Lock()
	term := c.d.Term
	c.mu.Unlock()
	if term == "" {
		return
	}
	t, err := c.a.mgw.Termination(ctx, term)
	if err != nil {
		c.log.Debug("read media counters failed", "err", err)
		return
	}
	if !t.WSAttached {
		// Nobody to show it to; and every write to the player renews its life (the
		// janitor removes a gone page's objects, which ends their calls, only once they
		// were left unwritten for the grace period): a call of a closed page must end.
		return
	}
	b, err := json.Marshal(qualityOf(t.Counters))
	if err != nil || string(b) == c.quality {
		return
	}
	if err := c.commit(ctx, store.Set(c.a.f.mediaQuality, string(b))); err != nil {
		c.log.Debug("write media quality failed", "err", err)
		return
	}
	c.quality = string(b)
}
