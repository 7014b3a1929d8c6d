package otbridge

import (
	"context"
	"errors"
	"time"

	"dsmgw/store"
)

// op handles one op message: limits and grants, one op in flight per object, the commit,
// and the ack, which for a subscribed object waits until every lower revision was sent.
func (c *conn) op(m Msg) {
	if !c.allow() {
		c.nack(m, protoErr(CodeRateLimited, "over %g ops per second", c.b.cfg.OpsPerSecond))
		return
	}
	for _, o := range m.Ops {
		if !c.b.cfg.Policy.CanWrite(c.claims, m.Obj, o.Field) {
			c.nack(m, protoErr(CodeForbidden, "this token may not write field %.128q of %s", o.Field, m.Obj))
			return
		}
	}
	if err := store.Validate(m.Ops, c.b.st.Config().Limits); err != nil {
		c.nack(m, storeError(err))
		return
	}
	if owner, ok := c.b.st.Schema().Owner(m.Obj); ok && owner == c.key && !c.claimed[m.Obj] {
		// A page's first write of an object of its own counts it among the key's objects,
		// so that one page cannot make objects without bound (each stays until the key is
		// gone for good).
		ctx, cancel := context.WithTimeout(c.b.ctx, c.b.cfg.CommitTimeout)
		err := c.b.st.Claim(ctx, c.key, m.Obj, c.b.cfg.MaxObjects)
		cancel()
		switch {
		case errors.Is(err, store.ErrTooManyObjects):
			c.nack(m, protoErr(CodeTooManyObjects, "this client key has %d objects already", c.b.cfg.MaxObjects))
			return
		case err != nil:
			c.b.m.rejects.WithLabelValues(CodeUnavailable).Inc()
			c.log.Warn("object claim failed; closing the connection so the client resends", "obj", m.Obj, "err", err)
			c.close(CloseUnavailable, CodeUnavailable)
			return
		}
		if c.claimed == nil {
			c.claimed = make(map[string]bool)
		}
		c.claimed[m.Obj] = true
	}
	inf := &inflight{seq: m.Seq}
	c.mu.Lock()
	if cur := c.inflight[m.Obj]; cur != nil {
		c.mu.Unlock()
		c.nack(m, protoErr(CodeInflight, "op seq %d on %s is not acknowledged yet", cur.seq, m.Obj))
		return
	}
	c.inflight[m.Obj] = inf
	c.mu.Unlock()

	base := int64(-1)
	if m.Base != nil {
		base = *m.Base
	}
	ctx, cancel := context.WithTimeout(c.b.ctx, c.b.cfg.CommitTimeout)
	start := time.Now()
	res, err := c.b.st.Commit(ctx, store.Commit{Obj: m.Obj, Client: c.key, Seq: m.Seq, Base: base, Epoch: c.epoch, Ops: m.Ops})
	cancel()
	c.b.m.commitTime.Observe(time.Since(start).Seconds())
	if err != nil {
		c.mu.Lock()
		if c.inflight[m.Obj] == inf {
			delete(c.inflight, m.Obj)
		}
		c.mu.Unlock()
		var reused *store.SeqReusedError
		if errors.As(err, &reused) {
			c.b.m.rejects.WithLabelValues(CodeSeqReused).Inc()
			c.send(encodeNack(m.Obj, m.Seq, protoErr(CodeSeqReused, "seq %d is taken; the last committed is %d", m.Seq, reused.Last), reused.Last))
			return
		}
		if pe := storeError(err); pe.Code != CodeUnavailable {
			if pe.Code == CodeInternal {
				c.log.Error("commit script failed", "obj", m.Obj, "seq", m.Seq, "err", err)
			}
			c.nack(m, pe)
			return
		}
		// Whether Redis committed the op is unknown: the client must resend it with the
		// same seq on a new connection, where deduplication gives the exact answer.
		c.b.m.rejects.WithLabelValues(CodeUnavailable).Inc()
		c.log.Warn("commit failed; closing the connection so the client resends", "obj", m.Obj, "err", err)
		c.close(CloseUnavailable, CodeUnavailable)
		return
	}
	if !res.Dup {
		c.b.m.committed.Inc()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[m.Obj] != inf {
		return // the feed delivered the entry first and it was sent as the ack
	}
	inf.rev = res.Rev
	s := c.subs[m.Obj]
	if s == nil || (s.state == subLive && s.sent >= res.Rev) {
		delete(c.inflight, m.Obj)
		c.enqueueLocked(encodeAck(m.Obj, m.Seq, res.Rev))
	}
	// Otherwise the subscription sends the ack once it has sent every revision below.
}

// storeError maps a store error to its protocol code; anything unknown is unavailable.
func storeError(err error) *ProtoError {
	code := CodeUnavailable
	switch {
	case errors.Is(err, store.ErrExpectFailed):
		code = CodeExpectFailed
	case errors.Is(err, store.ErrStale):
		code = CodeStale
	case errors.Is(err, store.ErrBaseAhead):
		code = CodeBaseAhead
	case errors.Is(err, store.ErrTooManyFields):
		code = CodeTooManyFields
	case errors.Is(err, store.ErrTooManyOps):
		code = CodeTooManyOps
	case errors.Is(err, store.ErrValueTooLong):
		code = CodeValueTooLong
	case errors.Is(err, store.ErrBadOp), errors.Is(err, store.ErrBadAddress):
		code = CodeBadMessage
	case errors.Is(err, store.ErrScript):
		// Redis ran the script and it failed: nothing was written and a resend would fail
		// the same way, so the op is refused rather than the connection closed for a resend.
		code = CodeInternal
	}
	return &ProtoError{Code: code, Msg: err.Error()}
}
