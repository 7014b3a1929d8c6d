package dsmclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"dsmgw/otbridge"
	"dsmgw/store"
)

// subRetry is the pause before a subscription refused with unavailable is asked again.
const subRetry = 500 * time.Millisecond

// Subscribe subscribes to obj and returns its replica once the snapshot arrived. A second
// call returns the same Object.
func (c *Client) Subscribe(ctx context.Context, obj string) (*Object, error) {
	if err := store.ValidAddress(obj); err != nil {
		return nil, fmt.Errorf("dsmclient: subscribe: %w", err)
	}
	c.mu.Lock()
	if c.closed || c.err != nil {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	o := c.objects[obj]
	if o == nil {
		o = &Object{c: c, addr: obj}
		c.objects[obj] = o
	}
	if !o.subscribed {
		o.subscribed = true
		o.loaded = false
		o.server, o.view, o.rev = map[string]string{}, map[string]string{}, 0
		o.recomputeLocked()
		o.ready = make(chan struct{})
		o.subErr = nil
		c.sendSubLocked(o)
	}
	ready := o.ready
	c.mu.Unlock()
	if ready != nil {
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, fmt.Errorf("dsmclient: subscribe %s: %w", obj, ctx.Err())
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if o.subErr != nil {
		o.subscribed = false
		return nil, o.subErr
	}
	return o, nil
}

// Blind returns an object for writes without a subscription (such as the own entry of the
// players index): its ops are sent without base and it keeps no view.
func (c *Client) Blind(obj string) *Object {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.objects[obj]
	if o == nil {
		o = &Object{c: c, addr: obj}
		c.objects[obj] = o
	}
	return o
}

// Unsubscribe stops receiving obj. Its seq numbering is kept, so later writes stay
// deduplicable.
func (c *Client) Unsubscribe(obj string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.objects[obj]
	if o == nil || !o.subscribed {
		return
	}
	o.subscribed, o.loaded = false, false
	b, _ := json.Marshal(map[string]string{"t": otbridge.TypeUnsub, "obj": obj})
	c.sendLocked(b)
}

// Idle waits until the client is connected, every subscription is current and no op is in
// flight or buffered.
func (c *Client) Idle(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		c.mu.Lock()
		idle := c.link != nil
		for _, o := range c.objects {
			if o.inflight != nil || len(o.buffer) > 0 || (o.subscribed && !o.loaded) {
				idle = false
			}
		}
		err := c.err
		c.mu.Unlock()
		if err != nil {
			return err
		}
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dsmclient: not idle: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// Err returns the fatal error that stopped the client (a token refused on reconnect).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection and stops reconnecting; safe to call twice.
func (c *Client) Close() error {
	c.mu.Lock()
	if !c.closed {
		close(c.closing)
	}
	c.closed = true
	l := c.link
	if l == nil {
		l = c.first
	}
	c.mu.Unlock()
	if l != nil {
		l.close()
	}
	<-c.done
	return nil
}

type logEntry struct {
	Rev int64      `json:"rev"`
	Seq int64      `json:"seq"`
	Ops []store.Op `json:"ops"`
}

type inMsg struct {
	T      string            `json:"t"`
	Obj    string            `json:"obj"`
	Rev    int64             `json:"rev"`
	Seq    int64             `json:"seq"`
	Ops    []store.Op        `json:"ops"`
	Fields map[string]string `json:"fields"`
	Log    []logEntry        `json:"log"`
	Code   string            `json:"code"`
	Msg    string            `json:"msg"`
	Last   int64             `json:"last"`
}

// handle applies one server message.
func (c *Client) handle(b []byte) {
	var m inMsg
	if err := json.Unmarshal(b, &m); err != nil {
		c.log.Error("undecodable server message", "err", err)
		return
	}
	now := time.Now()
	var evs []*Event
	c.mu.Lock()
	o := c.objects[m.Obj]
	switch m.T {
	case otbridge.TypeSnap, otbridge.TypeResync:
		if o == nil || !o.subscribed {
			break
		}
		evs = append(evs, o.resetLocked(m.Rev, m.Fields))
		if m.T == otbridge.TypeSnap {
			c.loadedLocked(o)
		}
	case otbridge.TypeCatchup:
		if o == nil || !o.subscribed {
			break
		}
		for _, e := range m.Log {
			if e.Seq > 0 {
				evs = append(evs, o.ownLocked(e.Rev, e.Seq, e.Ops, now))
			} else {
				evs = append(evs, o.remoteLocked(e.Rev, e.Ops))
			}
		}
		c.loadedLocked(o)
	case otbridge.TypeOp:
		if o == nil || !o.subscribed || !o.loaded {
			break
		}
		if m.Seq > 0 {
			// Written under this client key but not this connection's op in flight:
			// another connection of the same session (a second tab), or an earlier one.
			if p := o.inflight; (p == nil || p.seq != m.Seq) && c.cfg.OnRemote != nil {
				c.cfg.OnRemote(Remote{Obj: m.Obj, Rev: m.Rev, Ops: m.Ops, At: now})
			}
			evs = append(evs, o.ownLocked(m.Rev, m.Seq, m.Ops, now))
		} else {
			if c.cfg.OnRemote != nil {
				c.cfg.OnRemote(Remote{Obj: m.Obj, Rev: m.Rev, Ops: m.Ops, At: now})
			}
			evs = append(evs, o.remoteLocked(m.Rev, m.Ops))
		}
		c.flushLocked(o)
	case otbridge.TypeAck:
		if o == nil || o.inflight == nil || o.inflight.seq != m.Seq {
			break // answers a resend whose commit this client already saw
		}
		evs = append(evs, o.ackLocked(o.inflight, m.Rev, o.inflight.ops, now))
		c.flushLocked(o)
	case otbridge.TypeNack:
		if o == nil || o.inflight == nil || o.inflight.seq != m.Seq {
			break
		}
		if m.Code == otbridge.CodeSeqReused {
			// An earlier page with this client key committed up to Last: number after it.
			p := o.inflight
			o.seq = max(o.seq, m.Last) + 1
			p.seq = o.seq
			c.sendOpLocked(o, p)
			break
		}
		p := o.inflight
		o.inflight = nil
		if c.cfg.OnNack != nil {
			c.cfg.OnNack(Nack{Obj: m.Obj, Seq: m.Seq, Code: m.Code, Msg: m.Msg, Ops: p.ops})
		}
		if o.subscribed {
			if changed := o.recomputeLocked(); len(changed) > 0 {
				evs = append(evs, &Event{Obj: o.addr, Rev: o.rev, Fields: changed, Rollback: true})
			}
		}
		c.flushLocked(o)
	case otbridge.TypeError:
		if c.cfg.OnError != nil {
			c.cfg.OnError(m.Code, m.Msg, m.Obj)
		}
		if o != nil && o.subscribed && !o.loaded {
			if m.Code == otbridge.CodeUnavailable || m.Code == otbridge.CodeRateLimited {
				time.AfterFunc(subRetry, func() {
					c.mu.Lock()
					defer c.mu.Unlock()
					if o.subscribed && !o.loaded {
						c.sendSubLocked(o)
					}
				})
			} else {
				c.failSubLocked(o, fmt.Errorf("dsmclient: subscribe %s: %s: %s", m.Obj, m.Code, m.Msg))
				o.subscribed = false
			}
		} else {
			c.log.Warn("server error", "code", m.Code, "msg", m.Msg, "obj", m.Obj)
		}
	}
	var ls []func(Event)
	if o != nil {
		ls = o.listenersLocked()
	}
	c.mu.Unlock()
	for _, ev := range evs {
		notify(ls, ev)
	}
}
