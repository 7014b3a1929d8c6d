package mixer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// maxLag is how far a Scheduler may fall behind its clock before it gives up on the ticks
// it missed: up to 200 ms (ten ticks, the default jitter buffer depth, so a listener's
// buffer can take the burst) it catches up by ticking back to back, and jitter buffers
// drain at the senders' rate; beyond, the missed ticks are skipped and counted (a stopped
// process or an overloaded core; catching up would only burst packets out).
const maxLag = 200 * time.Millisecond

// SchedulerStats describe how well a Scheduler kept time.
type SchedulerStats struct {
	Mixers  int           // mixers it drives
	Ticks   uint64        // ticks run
	Skipped uint64        // ticks given up after falling more than 200 ms behind
	Last    time.Duration // duration of the last tick of all its mixers
	Max     time.Duration // longest such tick
}

// Scheduler is the clock of a set of mixers: every 20 ms it ticks each of them, one
// after the other on its own goroutine. One scheduler keeps one core busy at most; a
// server runs one per core and spreads its rooms over them.
type Scheduler struct {
	mu     sync.Mutex // guards mixers
	mixers []*Mixer   // copied on write: a tick iterates a snapshot without the lock
	snap   atomic.Pointer[[]*Mixer]

	ticks, skipped atomic.Uint64
	last, max      atomic.Int64 // nanoseconds
}

// NewScheduler returns a scheduler driving no mixer yet.
func NewScheduler() *Scheduler {
	s := &Scheduler{}
	s.snap.Store(&[]*Mixer{})
	return s
}

// Add puts a mixer on the clock.
func (s *Scheduler) Add(m *Mixer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mixers = append(s.mixers[:len(s.mixers):len(s.mixers)], m)
	snap := s.mixers
	s.snap.Store(&snap)
}

// Remove takes a mixer off the clock; it is not ticked again once the tick in progress,
// if any, ends.
func (s *Scheduler) Remove(m *Mixer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := make([]*Mixer, 0, len(s.mixers))
	for _, x := range s.mixers {
		if x != m {
			next = append(next, x)
		}
	}
	s.mixers = next
	s.snap.Store(&next)
}

// Len is the number of mixers on the clock.
func (s *Scheduler) Len() int {
	return len(*s.snap.Load())
}

// Stats returns the scheduler's timing figures.
func (s *Scheduler) Stats() SchedulerStats {
	return SchedulerStats{Mixers: s.Len(), Ticks: s.ticks.Load(), Skipped: s.skipped.Load(),
		Last: time.Duration(s.last.Load()), Max: time.Duration(s.max.Load())}
}

// TickAll ticks every mixer once, now.
func (s *Scheduler) TickAll() {
	start := time.Now()
	for _, m := range *s.snap.Load() {
		m.Tick()
	}
	d := int64(time.Since(start))
	s.last.Store(d)
	if d > s.max.Load() {
		s.max.Store(d) // only Run's goroutine writes: no lost update
	}
	s.ticks.Add(1)
}

// Run ticks every 20 ms of the monotonic clock until ctx ends. Ticks are scheduled on
// absolute times (start + n × 20 ms), so timer slack does not accumulate into drift
// against the senders' clocks.
func (s *Scheduler) Run(ctx context.Context) error {
	next := time.Now().Add(FrameDuration)
	t := time.NewTimer(FrameDuration)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if behind := time.Since(next); behind > maxLag {
			n := uint64(behind / FrameDuration)
			s.skipped.Add(n)
			next = next.Add(time.Duration(n) * FrameDuration)
		}
		s.TickAll()
		next = next.Add(FrameDuration)
		t.Reset(max(time.Until(next), 0))
	}
}
