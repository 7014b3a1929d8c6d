package otbridge

import (
	"sync"

	"dsmgw/store"
)

// hubShards spreads the object map over independent locks so that subscribing on one
// object never waits for fan-out on another.
const hubShards = 64

// hub maps an object to the local subscriptions on it. Lists are copy-on-write, so the
// feed handler iterates them without holding a lock; a removed subscription is marked and
// skipped.
type hub struct {
	feed   *store.Feed
	shards [hubShards]hubShard
}

type hubShard struct {
	mu   sync.RWMutex
	objs map[string]*hubEntry
}

type hubEntry struct {
	subs    []*sub
	unwatch func() // feed.Watch is held while the object has local subscribers
}

func newHub(feed *store.Feed) *hub {
	h := &hub{feed: feed}
	for i := range h.shards {
		h.shards[i].objs = make(map[string]*hubEntry)
	}
	return h
}

func (h *hub) shard(obj string) *hubShard {
	// FNV-1a: cheap and spreads similar addresses.
	x := uint32(2166136261)
	for i := 0; i < len(obj); i++ {
		x ^= uint32(obj[i])
		x *= 16777619
	}
	return &h.shards[x%hubShards]
}

func (h *hub) add(s *sub) {
	sh := h.shard(s.obj)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.objs[s.obj]
	if e == nil {
		e = &hubEntry{unwatch: h.feed.Watch(s.obj)}
		sh.objs[s.obj] = e
	}
	next := make([]*sub, len(e.subs), len(e.subs)+1)
	copy(next, e.subs)
	e.subs = append(next, s)
}

func (h *hub) remove(s *sub) {
	sh := h.shard(s.obj)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.objs[s.obj]
	if e == nil {
		return
	}
	next := make([]*sub, 0, len(e.subs))
	for _, x := range e.subs {
		if x != s {
			next = append(next, x)
		}
	}
	if len(next) == 0 {
		e.unwatch()
		delete(sh.objs, s.obj)
		return
	}
	e.subs = next
}

// get returns the subscriptions on obj; the slice must not be modified.
func (h *hub) get(obj string) []*sub {
	sh := h.shard(obj)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if e := sh.objs[obj]; e != nil {
		return e.subs
	}
	return nil
}

// each calls fn for every subscription (used when a feed shard lost entries).
func (h *hub) each(fn func(*sub)) {
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		var all []*sub
		for _, e := range sh.objs {
			all = append(all, e.subs...)
		}
		sh.mu.RUnlock()
		for _, s := range all {
			fn(s)
		}
	}
}
