package users

import (
	"context"
	"sync"
	"time"
)

// Handoff, the users' part of a graceful shutdown: before the instance goes, every user
// it holds moves to another instance, which registers its own contact (and removes ours
// in the same REGISTER, as after a takeover) before this one lets go. Incoming calls keep
// arriving throughout: until the other instance's REGISTER, the CSCF sends them here, and
// the call controller still takes them (it refuses calls only once the handoff is over).

// handoffPoll is how often a handing-off worker reads its user's record to see whether
// another instance registered it: a REGISTER round trip takes milliseconds.
const handoffPoll = 50 * time.Millisecond

// Handoff hands every user held here to other instances: from now on this instance
// claims no user, and each of its workers releases its lease, announces the user (so
// another instance claims it at once) and waits until the new holder has registered its
// own contact in place of ours, without unregistering. It returns when every user moved
// or ctx ended, with the users moved and those left (nobody took them in time: a lone
// instance, say; their bindings stay until they expire or an instance takes them).
func (u *Users) Handoff(ctx context.Context) (moved, left int) {
	u.mu.Lock()
	u.handingOff = true
	ws := make([]*userWorker, 0, len(u.workers))
	for _, w := range u.workers {
		ws = append(ws, w)
	}
	u.mu.Unlock()
	t0 := time.Now()
	u.log.Info("users: handing off the users held here", "users", len(ws))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			ok := w.handOff(ctx)
			mu.Lock()
			if ok {
				moved++
			} else {
				left++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	u.log.Info("users: handoff done", "moved", moved, "left", left, "took", time.Since(t0).Round(time.Millisecond))
	return moved, left
}

// handingOffNow reports whether Handoff was called: the instance claims no user.
func (u *Users) handingOffNow() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.handingOff
}

// handOff asks the worker to hand its user over and waits for the outcome.
func (w *userWorker) handOff(ctx context.Context) bool {
	res := make(chan bool, 1)
	select {
	case w.handoff <- res:
	case <-w.done:
		return true // the worker ended meanwhile (a logout): nothing to hand over
	case <-ctx.Done():
		return false
	}
	select {
	case ok := <-res:
		return ok
	case <-ctx.Done():
		return false
	}
}

// giveUp runs on the worker's goroutine: it ends the user's conference subscriptions
// (the new holder subscribes again), releases the lease, announces the user and waits
// until the record shows another contact than ours (the new holder's REGISTER, which also
// removed ours). It reports whether the user moved before ctx ended.
func (w *userWorker) giveUp(ctx context.Context) bool {
	ours := w.contactString()
	w.stopSubs(true)
	w.u.releaseLease(ctx, w.user, w.token)
	_ = w.u.announce(ctx, w.user)
	w.log.Info("users: handing the user to another instance", "contact", ours)
	t := time.NewTicker(handoffPoll)
	defer t.Stop()
	for {
		rec, err := w.u.loadRecord(ctx, w.user)
		if err == nil && (rec == nil || rec.Contact != ours || !w.registered) {
			w.log.Info("users: user moved to another instance", "contact", contactOf(rec))
			return true
		}
		select {
		case <-ctx.Done():
			w.log.Warn("users: no instance took the user in time; its binding stays until it expires")
			return false
		case <-t.C:
		}
	}
}

func contactOf(rec *regRecord) string {
	if rec == nil {
		return ""
	}
	return rec.Contact
}
