package asadapter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Renewing the claims of every call in one round trip. Each call's lease loop
// (keepLease, lease.go) used to renew its own claim: one goroutine and one script call
// per call per tick, four times a second. On a starved CPU those hundreds of goroutines
// and round trips were the work that came late, and a process that was not scheduled for
// a while lost all its claims together. Now one loop per instance renews every claim
// the instance holds in one pipeline per tick (a script call per claim, so each claim is
// still checked against its own "<instance>/<generation>" value, and each claim's keys
// stay a command of their own, which Redis Cluster routes by slot), and hands each call
// the answer to its claim with the time the pipeline was sent. What a call does with it
// is unchanged: the lease counts from when the request was sent (leaseFrom), and a
// call's lease loop pauses, resumes and fences as before; one thing is new, a lapsed
// claim nobody took since is restored (renewOrRestoreScript).

// renewOrRestoreScript extends a claim only if we still hold it, in the same generation
// (1); a claim that lapsed it restores, with our value and the lease, only if nobody
// claimed the player since: the generation counter still shows our generation (2).
// Every claim draws the next generation in the script that writes its key, so an
// unchanged counter proves that no instance held the claim after us, and none acted on
// the call (docs/call-survival.md, "Why a paused call may resume"). Otherwise 0.
var renewOrRestoreScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if v == false and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 2
end
return 0`)

// renewal is the answer to one claim's renewal: when the request that carried it was
// sent (its lease counts from then), and its error (nil: extended or restored;
// ErrClaimLost: the claim is another's, or it lapsed and the player was claimed since).
type renewal struct {
	sent time.Time
	err  error
	// restored: the claim had lapsed and nobody had claimed the player since, so the
	// renewal wrote it again (renewOrRestoreScript).
	restored bool
}

// renewers holds the claims the instance renews, each with where its answers go.
type renewers struct {
	mu   sync.Mutex // guards subs
	subs map[*call]*leaseSub
	now  chan struct{} // a call asks for a renewal at once (cap 1)
}

// leaseSub is one call's claim in the renewal loop; results holds the answer not read
// yet (cap 1: answers that come before the call reads them are merged, see deliver).
type leaseSub struct {
	cl      claimed
	mu      sync.Mutex // orders the deliveries of pipelines that answer together
	results chan renewal
}

func newRenewers() *renewers {
	return &renewers{subs: make(map[*call]*leaseSub), now: make(chan struct{}, 1)}
}

// add puts the call's claim into every renewal from now on and returns where its answers
// come; remove takes it out.
func (r *renewers) add(c *call) <-chan renewal {
	s := &leaseSub{cl: c.cl, results: make(chan renewal, 1)}
	r.mu.Lock()
	r.subs[c] = s
	r.mu.Unlock()
	return s.results
}

func (r *renewers) remove(c *call) {
	r.mu.Lock()
	delete(r.subs, c)
	r.mu.Unlock()
}

// hurry asks for a renewal of every claim now (a paused call waits for one).
func (r *renewers) hurry() { signal(r.now) }

// snapshot is the claims to renew now.
func (r *renewers) snapshot() []*leaseSub {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*leaseSub, 0, len(r.subs))
	for _, s := range r.subs {
		out = append(out, s)
	}
	return out
}

// deliver hands a call the answer to its claim, merged with one it has not read yet:
// a claim found lost stays lost (only this instance writes its value, and never again
// once it lapsed), so that answer is never dropped; of two successes the later sent is
// kept (its lease reaches further); a success beats a failed request.
func (s *leaseSub) deliver(r renewal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case old := <-s.results:
		r = mergeRenewals(old, r)
	default:
	}
	s.results <- r // room: only deliver writes, under mu, and the channel was emptied
}

// mergeRenewals is the answer that says more of two for one claim (see deliver).
func mergeRenewals(a, b renewal) renewal {
	switch {
	case errors.Is(a.err, ErrClaimLost):
		return a
	case errors.Is(b.err, ErrClaimLost):
		return b
	case a.err == nil && b.err == nil:
		if a.sent.After(b.sent) {
			return a
		}
		return b
	case a.err == nil:
		return a
	default:
		return b
	}
}

// renewInFlight bounds the renewal pipelines on their way at once. Ticks do not wait for
// the answer to the last one: on a busy machine an answer can take most of a lease to be
// read, and a claim expires a lease after the last renewal Redis ran, whether or not we
// have read its answer; waiting for it before sending the next let a slow round trip
// become an expired claim. A pipeline held by a dead network returns only at the Redis
// client's timeout, so this many at most are held at once, and ticks meanwhile send
// nothing (each call's fence timer does not wait for them).
const renewInFlight = 3

// renewLeases renews every claim the instance holds once per renewEvery (and at once when
// a paused call asks) until ctx ends.
func (a *Adapter) renewLeases(ctx context.Context) error {
	r := a.renewers
	tick := time.NewTicker(a.renewEvery())
	defer tick.Stop()
	done := make(chan struct{}, renewInFlight)
	inFlight, again := 0, false
	start := func() {
		subs := r.snapshot()
		if len(subs) == 0 {
			return
		}
		inFlight++
		go func() {
			a.renewBatch(ctx, subs)
			done <- struct{}{}
		}()
	}
	defer func() {
		for ; inFlight > 0; inFlight-- {
			<-done
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case due := <-tick.C:
			late := time.Since(due)
			a.met.renewals.WithLabelValues("tick").Observe(late.Seconds())
			if late > a.renewEvery() {
				// This process was not scheduled for that long: the calls' leases ran
				// short for want of CPU, not of Redis.
				a.log.Warn("renewal tick late", "late", late.Round(time.Millisecond), "claims", len(r.snapshot()))
				a.takeoverQ.starved(a.cfg.ClaimTTL)
			}
			if inFlight < renewInFlight {
				start()
			}
		case <-r.now:
			if inFlight < renewInFlight {
				start()
			} else {
				again = true
			}
		case <-done:
			inFlight--
			if again {
				again = false
				start()
			}
		}
	}
}

// renewBatch renews the claims of subs in one pipeline and hands each call its answer.
func (a *Adapter) renewBatch(ctx context.Context, subs []*leaseSub) {
	cls := make([]claimed, len(subs))
	for i, s := range subs {
		cls[i] = s.cl
	}
	sent := time.Now()
	answers := a.renewAll(ctx, cls)
	took := time.Since(sent)
	a.met.renewals.WithLabelValues("answer").Observe(took.Seconds())
	if took > a.renewEvery() {
		a.log.Warn("renewal answered late", "took", took.Round(time.Millisecond), "claims", len(cls))
		a.takeoverQ.starved(a.cfg.ClaimTTL)
	}
	for i, s := range subs {
		answers[i].sent = sent
		s.deliver(answers[i])
	}
}

// renewAll extends our leases on cls in one pipeline (a second one for the claims whose
// script Redis did not have cached) and returns each claim's answer (its send time left
// to the caller): extended, restored (see renewOrRestoreScript), ErrClaimLost when another
// instance (or another generation of ours) holds it, or it lapsed and was claimed since,
// or the request's failure.
func (a *Adapter) renewAll(ctx context.Context, cls []claimed) []renewal {
	out := make([]renewal, len(cls))
	cmds := a.renewPipeline(ctx, cls, func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
		return renewOrRestoreScript.EvalSha(ctx, p, keys, args...)
	})
	var missing []int // NOSCRIPT: Redis restarted or flushed its scripts
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		again := make([]claimed, len(missing))
		for j, i := range missing {
			again[j] = cls[i]
		}
		for j, cmd := range a.renewPipeline(ctx, again, func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
			return renewOrRestoreScript.Eval(ctx, p, keys, args...)
		}) {
			cmds[missing[j]] = cmd
		}
	}
	for i, cmd := range cmds {
		n, err := cmd.Int()
		switch {
		case err != nil:
			out[i].err = fmt.Errorf("asadapter: renew claim %s: %w", cls[i].player, err)
		case n == 0:
			out[i].err = fmt.Errorf("asadapter: renew claim %s: %w", cls[i].player, ErrClaimLost)
		case n == 2:
			out[i].restored = true
		}
	}
	return out
}

// renewPipeline runs one renewal script call per claim in one pipeline.
func (a *Adapter) renewPipeline(ctx context.Context, cls []claimed,
	run func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(cls))
	ttl := a.cfg.ClaimTTL.Milliseconds()
	_, err := a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, cl := range cls {
			cmds[i] = run(p, []string{a.keys.claim(cl.player), a.keys.claimGen(cl.player)}, cl.value, ttl, cl.genString())
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		// Each command carries its own error too (the whole pipeline's, when the
		// connection failed); they are read one by one.
		a.log.Debug("renew claims: pipeline failed", "claims", len(cls), "err", err)
	}
	return cmds
}
