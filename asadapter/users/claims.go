package users

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Claims: each user is held by exactly one instance through a lease in Redis. An instance
// claims users it hears of on the wake-up channel (new, changed and ended registrations)
// and, every Scan, every user of the registration index no instance holds (a lost wake-up,
// or the users of an instance that died).

// leaseReleaseTimeout bounds the release of a lease when a worker ends: a Redis that does
// not answer within 2 s lets the lease expire on its own instead.
const leaseReleaseTimeout = 2 * time.Second

// wake makes this instance look at user now: the worker if we hold it, else a claim.
func (u *Users) wake(ctx context.Context, user string) {
	u.mu.Lock()
	w := u.workers[user]
	u.mu.Unlock()
	if w != nil {
		w.poke()
		return
	}
	u.tryClaim(ctx, user)
}

// tryClaim takes the lease of user if no instance holds it and starts its worker.
func (u *Users) tryClaim(ctx context.Context, user string) { u.claimAll(ctx, []string{user}) }

// claimAll tries to take the leases of users not held here, in one pipelined round trip
// (the scan offers every registered user each time), and starts a worker for each lease
// taken.
func (u *Users) claimAll(ctx context.Context, users []string) {
	u.mu.Lock()
	runCtx := u.runCtx
	if u.handingOff {
		u.mu.Unlock()
		return // going away: the users are for the instances that stay
	}
	free := make([]string, 0, len(users))
	for _, user := range users {
		if _, held := u.workers[user]; !held {
			free = append(free, user)
		}
	}
	u.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil || len(free) == 0 {
		return
	}
	tokens := make([]string, len(free))
	cmds := make([]*redis.BoolCmd, len(free))
	_, err := u.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, user := range free {
			tokens[i] = u.cfg.Instance + "/" + newToken(8)
			cmds[i] = p.SetNX(ctx, u.keys.lease(user), tokens[i], u.cfg.LeaseTTL)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		u.log.Warn("users: claim", "users", len(free), "err", err)
	}
	for i, user := range free {
		if ok, err := cmds[i].Result(); err == nil && ok {
			u.startWorker(runCtx, user, tokens[i])
		}
	}
}

// startWorker runs the worker of a user whose lease we just took.
func (u *Users) startWorker(runCtx context.Context, user, token string) {
	w := newUserWorker(u, user, token)
	u.mu.Lock()
	if _, held := u.workers[user]; held || runCtx.Err() != nil || u.handingOff {
		u.mu.Unlock()
		u.releaseLease(runCtx, user, token)
		return
	}
	u.workers[user] = w
	u.wg.Add(1)
	u.mu.Unlock()
	u.met.claims.Inc()
	go func() {
		defer u.wg.Done()
		defer close(w.done)
		w.run(runCtx)
		u.mu.Lock()
		delete(u.workers, user)
		u.mu.Unlock()
	}()
}

// scanLoop claims, every Scan, the users of the registration index that no instance
// holds: new registrations whose wake-up was lost, and users of an instance that died.
func (u *Users) scanLoop(ctx context.Context) error {
	t := time.NewTicker(u.cfg.Scan)
	defer t.Stop()
	for {
		u.claimIndex(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// claimIndex claims the users of the registration index that no instance holds.
func (u *Users) claimIndex(ctx context.Context) {
	users, err := u.st.Redis().ZRange(ctx, u.keys.index(), 0, -1).Result()
	if err != nil && ctx.Err() == nil {
		u.log.Warn("users: read registration index", "err", err)
	}
	u.claimAll(ctx, users)
}

// wakeLoop listens to the wake-up channel on which every instance announces new,
// changed and ended registrations, so the holder reacts at once.
func (u *Users) wakeLoop(ctx context.Context) error {
	for ctx.Err() == nil {
		ps := u.st.Redis().Subscribe(ctx, u.keys.wakeChannel())
		// ReceiveMessage does not watch ctx; closing the PubSub is what unblocks it.
		stop := context.AfterFunc(ctx, func() { ps.Close() })
		// Once subscribed, the index: a registration announced before the subscription
		// took effect (just after Run started, or while Redis was away) is claimed now,
		// not at the next scan, which may be far off (the scan at start can run first).
		if v, err := ps.Receive(ctx); err == nil {
			if m, ok := v.(*redis.Message); ok {
				u.wake(ctx, m.Payload)
			}
			u.claimIndex(ctx)
		}
		for ctx.Err() == nil {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					u.log.Warn("users: wake-up channel", "err", err)
				}
				break
			}
			u.wake(ctx, msg.Payload)
		}
		stop()
		ps.Close()
		select {
		case <-ctx.Done():
		case <-time.After(u.cfg.RetryMin):
		}
	}
	return ctx.Err()
}

// releaseLease drops the lease if it is still ours (compare and delete). It runs as a
// worker ends, often because ctx ended: the release is detached from ctx's cancellation and
// bounded by leaseReleaseTimeout.
func (u *Users) releaseLease(ctx context.Context, user, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaseReleaseTimeout)
	defer cancel()
	_ = userReleaseScript.Run(ctx, u.st.Redis(), []string{u.keys.lease(user)}, token).Err()
}
