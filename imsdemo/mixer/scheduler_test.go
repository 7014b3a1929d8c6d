package mixer

import (
	"context"
	"sync"
	"testing"
	"time"
)

// The scheduler's clock drives the mixers: a listener gets packets with no packet
// arriving, and a removed mixer is not ticked again.
func TestSchedulerTicksItsMixers(t *testing.T) {
	s := NewScheduler()
	got := make(chan struct{}, 100)
	m := New(Config{})
	m.Add(ParticipantConfig{Codec: PCMU, Sink: SinkFunc(func([]byte) {
		select {
		case got <- struct{}{}:
		default:
		}
	})})
	other := New(Config{})
	s.Add(m)
	s.Add(other)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Run(ctx) }()
	for range 5 {
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			t.Fatal("no packet from the scheduled mixer")
		}
	}
	s.Remove(other)
	if s.Len() != 1 {
		t.Fatalf("len %d", s.Len())
	}
	cancel()
	wg.Wait()
	st := s.Stats()
	if st.Ticks < 5 || st.Mixers != 1 || m.Ticks() != st.Ticks {
		t.Fatalf("stats %+v, mixer ticks %d", st, m.Ticks())
	}
	ticked := other.Ticks()
	s.TickAll()
	if other.Ticks() != ticked {
		t.Fatal("a removed mixer was ticked")
	}
}
