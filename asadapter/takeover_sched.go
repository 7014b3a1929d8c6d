package asadapter

import (
	"sync"
	"sync/atomic"
	"time"
)

// Spreading the takeovers of a burst. When an instance loses many calls at once (it was
// killed, or its process was not scheduled for a whole lease), every survivor finds all
// their claims expired within a few milliseconds. Taking them all over at once (a claim,
// a new termination, a re-INVITE, the page's media reattaching: the work of a call's
// set-up, a hundred times) starved the survivor on a busy CPU in turn: its own renewals
// waited behind that work, its claims expired, and the calls came back the other way, a
// burst at a time. So an instance carries at most takeoverSlots takeovers at once (from
// its claim to the re-INVITE's answer), one while its own renewals run late (its
// process is starved already); the players that find no slot wait in a queue, without
// claiming (their calls stay with no owner, silent, for another survivor or for the next
// slot), and the next of them is examined again as soon as a slot frees.

// takeoverSlots is how many takeovers an instance carries at once: each takes a few tens
// of milliseconds of a live machine, so a hundred calls of a lost instance are all moved
// within a fraction of the lease more than one would be.
const takeoverSlots = 8

// takeoverGate hands out the takeover slots and queues the players that wait for one.
type takeoverGate struct {
	mu      sync.Mutex // guards busy, waiting and queued
	busy    int
	waiting []string
	queued  map[string]bool
	// lateUntil (unix nanoseconds) is until when this instance counts itself starved: a
	// renewal tick came late (lease_renew.go), and for a lease after it the gate hands
	// out one slot at a time.
	lateUntil atomic.Int64
}

func newTakeoverGate() *takeoverGate { return &takeoverGate{queued: make(map[string]bool)} }

// starved records that this process was not scheduled for a while (a renewal tick came
// late): for the next lease it takes calls over one at a time.
func (g *takeoverGate) starved(lease time.Duration) {
	g.lateUntil.Store(time.Now().Add(lease).UnixNano())
}

// acquire takes a slot for player's takeover; false when none is free, and then player
// is queued to be examined again when one frees (see release).
func (g *takeoverGate) acquire(player string) bool {
	limit := takeoverSlots
	if time.Now().UnixNano() < g.lateUntil.Load() {
		limit = 1
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.busy < limit {
		g.busy++
		return true
	}
	if !g.queued[player] {
		g.queued[player] = true
		g.waiting = append(g.waiting, player)
	}
	return false
}

// release gives a slot back and returns the next waiting player to examine ("" when none
// waits). The player is not given the slot: whoever asks first takes it, and a player
// that finds none queues again.
func (g *takeoverGate) release() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy--
	if len(g.waiting) == 0 {
		return ""
	}
	next := g.waiting[0]
	g.waiting = g.waiting[1:]
	delete(g.queued, next)
	return next
}

// takeoverSlot takes a slot for player's takeover and returns the function that gives it
// back (safe to call twice); ok false when none is free (player waits in the queue).
func (a *Adapter) takeoverSlot(player string) (release func(), ok bool) {
	if !a.takeoverQ.acquire(player) {
		a.met.takeovers.WithLabelValues("queued").Inc()
		return nil, false
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			if next := a.takeoverQ.release(); next != "" {
				a.kick(next)
			}
		})
	}, true
}
