package asadapter

import (
	"slices"
	"testing"
	"time"
)

// The gate carries takeoverSlots takeovers at once; the players that find no slot queue
// once each, and each released slot names the next of them, first come first.
func TestTakeoverGateQueuesBeyondSlots(t *testing.T) {
	t.Parallel()
	g := newTakeoverGate()
	for i := range takeoverSlots {
		if !g.acquire("players/p" + string(rune('a'+i)) + "/audio") {
			t.Fatalf("slot %d refused with %d busy", i, i)
		}
	}
	for _, p := range []string{"players/x/audio", "players/y/audio", "players/x/audio"} {
		if g.acquire(p) {
			t.Fatalf("%s got a slot beyond the %d", p, takeoverSlots)
		}
	}
	var next []string
	for range 3 {
		next = append(next, g.release())
	}
	if want := []string{"players/x/audio", "players/y/audio", ""}; !slices.Equal(next, want) {
		t.Fatalf("released slots named %q, want %q (each waiting player once, in order)", next, want)
	}
	if !g.acquire("players/x/audio") {
		t.Fatal("a freed slot was refused")
	}
}

// A starved instance (its renewal ticks came late) takes calls over one at a time.
func TestTakeoverGateOneAtATimeWhenStarved(t *testing.T) {
	t.Parallel()
	g := newTakeoverGate()
	g.starved(time.Hour)
	if !g.acquire("players/a/audio") {
		t.Fatal("the one slot of a starved instance was refused")
	}
	if g.acquire("players/b/audio") {
		t.Fatal("a starved instance took a second call over at once")
	}
	if next := g.release(); next != "players/b/audio" {
		t.Fatalf("released slot named %q, want the waiting player", next)
	}
	if !g.acquire("players/b/audio") {
		t.Fatal("the freed slot was refused")
	}
}
