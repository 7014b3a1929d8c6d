package store

import (
	"sync"
	"sync/atomic"
)

// hooks is a list of callbacks that is read on every feed entry or keyspace event and
// changed rarely: readers load it without a lock, writers copy it under one.
type hooks[F any] struct {
	mu   sync.Mutex // serialises add and remove
	list atomic.Pointer[[]*hook[F]]
}

type hook[F any] struct{ fn F }

// add registers fn and returns the func that removes it.
func (h *hooks[F]) add(fn F) (remove func()) {
	x := &hook[F]{fn: fn}
	h.mu.Lock()
	next := append(h.snapshot(), x)
	h.list.Store(&next)
	h.mu.Unlock()
	return func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		var next []*hook[F]
		for _, y := range h.snapshot() {
			if y != x {
				next = append(next, y)
			}
		}
		h.list.Store(&next)
	}
}

// snapshot returns a copy of the current list, safe to append to.
func (h *hooks[F]) snapshot() []*hook[F] {
	if p := h.list.Load(); p != nil {
		return append([]*hook[F](nil), *p...)
	}
	return nil
}

// load returns the current list for reading; callers must not change it.
func (h *hooks[F]) load() []*hook[F] {
	if p := h.list.Load(); p != nil {
		return *p
	}
	return nil
}
