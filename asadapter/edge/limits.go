package edge

import (
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Per-source bounds. A source is an IPv4 address, or the /64 of an IPv6 address (one
// host holds a whole /64 and can send from any of its addresses). Each source has two
// token buckets:
//
//   - the answer bucket (SourceDropRate per second), charged by every message before the
//     edge even reads it, decides whether it is looked at at all: without a token it is
//     dropped silently, so a flood costs the gateway one look-up per packet and sends
//     nothing back;
//   - the admit bucket (SourceRate per second), charged by every request but those in a
//     dialog from its next hop, decides whether it is handled: without a token it is
//     answered 503 with Retry-After.
//
// Both allow a burst of twice their rate. Counters bound what a source holds at once:
// server transactions, dialogs and stream connections. The table holds at most
// MaxSources sources; beyond that, new sources share one overflow entry, so a flood from
// spoofed addresses is bounded as one source and memory stays where it was.

// idleSource is how long a source with nothing open is kept after its last request: its
// buckets are full again well before (at the default rates within 2 s), so forgetting it
// loses nothing.
const idleSource = time.Minute

// bucket is a token bucket; at is the clock of its last update (0: never used, full).
type bucket struct {
	tokens float64
	at     int64
}

func (b *bucket) take(now int64, rate float64) bool {
	burst := 2 * rate
	if b.at == 0 {
		b.tokens = burst
	} else if now > b.at {
		b.tokens = min(burst, b.tokens+float64(now-b.at)/float64(time.Second)*rate)
	}
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true
	}
	return false
}

// source is what the edge keeps about one untrusted source.
type source struct {
	answer, admit       bucket
	txs, dialogs, conns int
	seen                int64  // clock of the last request
	refused             uint64 // refusals since the last summary
}

// table is the per-source state of untrusted sources.
type table struct {
	mu       sync.Mutex // guards m, overflow and every source's fields
	m        map[netip.Addr]*source
	max      int
	overflow source
}

func newTable(max int) *table {
	return &table{m: make(map[netip.Addr]*source), max: max}
}

// sourceKey returns the key of the source a is part of.
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, err := a.Prefix(64)
		if err == nil {
			return p.Addr()
		}
	}
	return a
}

// get returns the entry of the source of a, creating it (or the overflow entry when the
// table is full). The caller holds mu.
func (t *table) get(a netip.Addr, now int64) *source {
	k := sourceKey(a)
	s := t.m[k]
	if s == nil {
		if len(t.m) >= t.max {
			s = &t.overflow
		} else {
			s = &source{}
			t.m[k] = s
		}
	}
	s.seen = now
	return s
}

// charge takes one token of the answer bucket of a's source, which every message pays
// for before anything else is done with it; false when there was none (the message is
// dropped, and the refusal counted for the summary under the same lock).
func (t *table) charge(a netip.Addr, now int64, dropRate float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(a, now)
	if !s.answer.take(now, dropRate) {
		s.refused++
		return false
	}
	return true
}

// admit takes one token of the admit bucket of a's source, which a request pays for to
// be handled; false when there was none (it is answered 503).
func (t *table) admit(a netip.Addr, now int64, rate float64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.get(a, now).admit.take(now, rate)
}

// counter selects one of a source's counters.
type counter uint8

const (
	countTxs counter = iota
	countDialogs
	countConns
)

func (s *source) counter(c counter) *int {
	switch c {
	case countDialogs:
		return &s.dialogs
	case countConns:
		return &s.conns
	}
	return &s.txs
}

// acquire adds one to a counter of a's source unless it is at max; release takes it back
// (exactly once).
func (t *table) acquire(a netip.Addr, c counter, max int, now int64) (release func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.get(a, now)
	n := s.counter(c)
	if *n >= max {
		return nil, false
	}
	*n++
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			*n--
			t.mu.Unlock()
		})
	}, true
}

// refused counts a refusal of a's source for the next summary.
func (t *table) refused(a netip.Addr, now int64) {
	t.mu.Lock()
	t.get(a, now).refused++
	t.mu.Unlock()
}

// sweep forgets sources that hold nothing and were idle for idle, and returns how many
// are left. A map emptied by a sweep is made anew: Go maps do not shrink, and the memory
// of a flood from many sources must come back.
func (t *table) sweep(now int64, idle time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.m {
		if s.txs == 0 && s.dialogs == 0 && s.conns == 0 && s.refused == 0 && now-s.seen > int64(idle) {
			delete(t.m, k)
		}
	}
	if len(t.m) == 0 {
		t.m = make(map[netip.Addr]*source)
	}
	return len(t.m)
}

// sourceCount is one line of a summary's top sources.
type sourceCount struct {
	source string
	n      uint64
}

// top returns the n sources with the most refusals since the last call (the overflow
// entry as "other"), and resets every source's count.
func (t *table) top(n int) []sourceCount {
	t.mu.Lock()
	var all []sourceCount
	for k, s := range t.m {
		if s.refused > 0 {
			all = append(all, sourceCount{k.String(), s.refused})
			s.refused = 0
		}
	}
	if t.overflow.refused > 0 {
		all = append(all, sourceCount{"other", t.overflow.refused})
		t.overflow.refused = 0
	}
	t.mu.Unlock()
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	if len(all) > n {
		all = all[:n]
	}
	return all
}
