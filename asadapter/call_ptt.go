package asadapter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/ptt"
	"dsmgw/floorctl"
	"dsmgw/store"
)

// Push-to-talk calls (service "poc", docs/push-to-talk.md): a call whose offer or answer
// carries an MCPTT floor control stream, on a floor channel of ours (asadapter/ptt), and
// whose termination at the media gateway is gated. The page's floor intents come in the
// player's floor field (read on each wake-up of the confirmed call), the floor state goes
// back in the floor_* fields, and the gate opens and closes with the floor.

// pttCall is the floor side of a push-to-talk call. The call's goroutine sets it up and
// tears it down; the channel's Run goroutine (a helper of the call) does the rest. The
// pointer is set under the call's mu (other goroutines read it under mu); ch never
// changes, and only the call's goroutine touches the other fields.
type pttCall struct {
	ch      *ptt.Channel
	offered floorctl.Params    // the far end's MCPTT parameters; guarded by the call's mu
	stop    context.CancelFunc // ends Run; nil until it started
	intent  string             // the last floor field value acted on (consumed)
	stopped bool
}

// openFloor opens the floor channel of a push-to-talk call, before its offer or answer.
func (c *call) openFloor() error {
	ch, err := c.a.floorPorts.Open(rand.Uint32(), c.log)
	if err != nil {
		return fmt.Errorf("floor channel: %w", err)
	}
	c.mu.Lock() // the media gateway's events read it from their own goroutine
	c.ptt = &pttCall{ch: ch}
	c.mu.Unlock()
	return nil
}

// startFloor runs the floor channel once the session is up (the far end's floor address
// is known): the gate and the page's floor state follow the floor from then on.
func (c *call) startFloor() {
	p := c.ptt
	if p == nil || p.stop != nil || p.stopped {
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	p.stop = cancel
	c.help(func(context.Context) {
		_ = p.ch.Run(ctx, ptt.Hooks{Gate: c.setGate, Publish: c.publishFloor})
	})
}

// stopFloor ends the floor channel before the call's end is written: the floor is given
// back, the gate closed, and no floor state is written after the call's result.
func (c *call) stopFloor() {
	p := c.ptt
	if p == nil || p.stopped {
		return
	}
	p.stopped = true
	if p.stop == nil {
		p.ch.Close()
		return
	}
	p.stop()
	<-p.ch.Done()
}

// floorEndOps delete the floor fields when a push-to-talk call ends.
func (c *call) floorEndOps() []store.Op {
	if c.ptt == nil {
		return nil
	}
	f := c.a.f
	return []store.Op{store.Del(f.floor), store.Del(f.floorState), store.Del(f.floorTalker),
		store.Del(f.floorReason), store.Del(f.floorPosition), store.Del(f.floorDuration)}
}

// setGate is the channel's Gate hook: the termination's gate at the media gateway.
func (c *call) setGate(ctx context.Context, open bool) error {
	c.mu.Lock()
	term := c.d.Term
	c.mu.Unlock()
	if err := c.a.mgw.Gate(ctx, term, open); err != nil {
		c.a.met.mgwErrors.WithLabelValues("gate").Inc()
		return err
	}
	return nil
}

// publishFloor is the channel's Publish hook: the floor state in the player's fields, in
// one commit that lands only on this call.
func (c *call) publishFloor(ctx context.Context, s ptt.State) {
	f := c.a.f
	ops := []store.Op{store.Expect(f.callID, c.callID()), store.Set(f.floorState, string(s.Floor))}
	text := func(field, v string) store.Op {
		if v == "" {
			return store.Del(field)
		}
		return store.Set(field, v)
	}
	num := func(field string, n int) store.Op {
		if n <= 0 {
			return store.Del(field)
		}
		return store.Set(field, strconv.Itoa(n))
	}
	ops = append(ops, text(f.floorTalker, s.Talker), text(f.floorReason, s.Reason),
		num(f.floorPosition, s.Position), num(f.floorDuration, s.Duration))
	if err := c.commit(ctx, ops...); err != nil && !errors.Is(err, store.ErrExpectFailed) && !errors.Is(err, ErrFenced) {
		c.log.Warn("write floor state failed", "err", err)
	}
}

// floorIntent acts on the page's floor field (a wake-up of the confirmed call) and
// consumes it: deleted if unchanged, so each press is one request even when the page
// writes the same value again.
func (c *call) floorIntent(ctx context.Context, fl map[string]string) {
	p := c.ptt
	v, ok := fl[c.a.f.floor]
	if p == nil || !ok {
		return
	}
	switch v {
	case "request":
		p.ch.Request()
	case "release":
		p.ch.Release()
	default:
		c.log.Info("unknown floor intent ignored", "floor", v)
	}
	a := c.a
	if err := c.commit(ctx, store.Expect(a.f.floor, v), store.Del(a.f.floor)); err != nil &&
		!errors.Is(err, store.ErrExpectFailed) && !errors.Is(err, ErrFenced) {
		c.log.Warn("consume floor field failed", "err", err)
	}
}

// floorDetached releases the floor when the page's media WebSocket closed (the media
// gateway's ws_detached event): a page that went away does not hold the group silent.
func (c *call) floorDetached() {
	c.mu.Lock()
	p := c.ptt
	c.mu.Unlock()
	if p != nil {
		c.log.Info("page's media detached; releasing the floor")
		p.ch.Release()
	}
}

// floorAnswer takes the far end's floor address from its SDP (the answer to our offer,
// or the offer of an incoming call); an SDP without floor control is an error the call
// fails with.
func (c *call) floorAnswer(body []byte) (floorctl.Params, error) {
	if c.ptt == nil {
		return floorctl.Params{}, nil
	}
	params, err := c.ptt.ch.SetAnswer(body)
	if err != nil {
		return params, fmt.Errorf("push-to-talk needs floor control in the SDP: %w", err)
	}
	c.mu.Lock()
	c.ptt.offered = params
	c.mu.Unlock()
	return params, nil
}

// refusedFloor is the line sdp.Answer writes for an offered floor control stream.
var refusedFloor = []byte("m=application 0 udp MCPTT\r\n")

// withFloor (c.mu held) completes an SDP of ours with the floor control stream: appended to an
// offer, or in place of the refused stream sdp.Answer left in an answer (the answer keeps
// the offer's order of streams, RFC 3264 section 6).
func (c *call) withFloor(body []byte, answer bool) []byte {
	if c.ptt == nil {
		return body
	}
	if !answer {
		return c.ptt.ch.AppendOffer(body)
	}
	i := bytes.Index(body, refusedFloor)
	if i < 0 {
		return body
	}
	out := append([]byte(nil), body[:i]...)
	out = c.ptt.ch.AppendAnswer(out, c.ptt.offered)
	return append(out, body[i+len(refusedFloor):]...)
}

// serviceOf reads the service of an outgoing call from the player; an unknown one fails
// the call before any SIP is sent.
func (a *Adapter) serviceOf(fl map[string]string) (icsi.Service, error) {
	return icsi.Parse(fl[a.f.service])
}

// warningText keeps text fit for the quoted text of a Warning header (RFC 3261 section
// 20.43): no quotes, backslashes or control characters, at most 120 bytes.
func warningText(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if ch < 0x20 || ch == '"' || ch == '\\' || ch == 0x7f {
			b[i] = '\''
		}
	}
	if len(b) > 120 {
		b = b[:120]
	}
	return string(b)
}
