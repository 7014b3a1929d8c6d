package otbridge

import (
	"context"
	"sync"
	"time"
)

// presenceTimeout bounds one presence write: it is one ZADD, and a hello must not wait
// long on a slow Redis for something the periodic refresh repeats anyway.
const presenceTimeout = 2 * time.Second

// presence counts this instance's open connections per client key and tells the store
// when a key was last seen connected (docs/dsm-protocol.md, "Object life"): at hello, at
// close, and every PresenceInterval for every key with a connection open here. The store's
// Janitor removes what a key left behind once it has been seen by no instance for the
// grace period.
type presence struct {
	b *Bridge

	mu   sync.Mutex     // guards open
	open map[string]int // client key → connections open on this instance
}

func newPresence(b *Bridge) *presence { return &presence{b: b, open: make(map[string]int)} }

// opened records a connection of key after its hello.
func (p *presence) opened(key string) {
	p.mu.Lock()
	p.open[key]++
	p.mu.Unlock()
	p.touch(key)
}

// closed records the end of a connection of key: the grace period counts from now.
func (p *presence) closed(key string) {
	p.mu.Lock()
	if p.open[key]--; p.open[key] <= 0 {
		delete(p.open, key)
	}
	p.mu.Unlock()
	p.touch(key)
}

func (p *presence) touch(keys ...string) {
	ctx, cancel := context.WithTimeout(p.b.ctx, presenceTimeout)
	defer cancel()
	if err := p.b.st.Touch(ctx, time.Now(), keys...); err != nil && p.b.ctx.Err() == nil {
		p.b.log.Warn("presence not recorded; the periodic refresh retries", "keys", len(keys), "err", err)
	}
}

// run refreshes every open key every PresenceInterval until ctx ends.
func (p *presence) run(ctx context.Context) {
	t := time.NewTicker(p.b.cfg.PresenceInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		keys := make([]string, 0, len(p.open))
		for k := range p.open {
			keys = append(keys, k)
		}
		p.mu.Unlock()
		if len(keys) > 0 {
			p.touch(keys...)
		}
	}
}
