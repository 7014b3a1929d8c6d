package asadapter

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// claimPlayers claims n players for the instance, as n calls would.
func claimPlayers(tb testing.TB, e *env, a *Adapter, n int) []claimed {
	tb.Helper()
	cls := make([]claimed, n)
	for i := range cls {
		cl, ok, err := a.claim(e.ctx, fmt.Sprintf("players/renew%d/audio", i))
		if err != nil || !ok {
			tb.Fatalf("claim %d: ok %t, err %v", i, ok, err)
		}
		cls[i] = cl
	}
	return cls
}

// One pipeline renews each claim against its own value: a claim another instance took,
// and a claim that lapsed and was claimed since (its generation counter moved on), are
// reported lost, the others extended; a claim that lapsed and nobody claimed since is
// restored; Redis having lost its cached scripts (a restart) changes nothing.
func TestRenewAllChecksEachClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.adapter("gw1", nil).a
	cls := claimPlayers(t, e, a, 4)
	rdb := e.st.Redis()
	if err := rdb.Set(e.ctx, a.keys.claim(cls[1].player), "gw2/7", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 3} {
		if err := rdb.Del(e.ctx, a.keys.claim(cls[i].player)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Another instance claimed player 2 after its claim lapsed, and let it go (yield):
	// the counter moved on.
	if err := rdb.Incr(e.ctx, a.keys.claimGen(cls[2].player)).Err(); err != nil {
		t.Fatal(err)
	}
	// A long TTL on the kept claim: the renewal must set it back to the lease.
	if err := rdb.PExpire(e.ctx, a.keys.claim(cls[0].player), 100*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	res := a.renewAll(e.ctx, cls)
	if res[0].err != nil || res[0].restored {
		t.Errorf("renewal of a claim we hold: %+v (%v)", res[0], res[0].err)
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(res[i].err, ErrClaimLost) {
			t.Errorf("renewal of claim %d (taken, or lapsed and claimed since): %v, want ErrClaimLost", i, res[i].err)
		}
	}
	if res[3].err != nil || !res[3].restored {
		t.Errorf("renewal of a lapsed claim nobody took since: %+v, want it restored", res[3])
	}
	if ttl := rdb.PTTL(e.ctx, a.keys.claim(cls[0].player)).Val(); ttl > a.cfg.ClaimTTL {
		t.Errorf("kept claim's TTL %s after the renewal, want at most the lease %s", ttl, a.cfg.ClaimTTL)
	}
	if v := rdb.Get(e.ctx, a.keys.claim(cls[1].player)).Val(); v != "gw2/7" {
		t.Errorf("another instance's claim now %q, want it untouched", v)
	}
	if n := rdb.Exists(e.ctx, a.keys.claim(cls[2].player)).Val(); n != 0 {
		t.Errorf("a lapsed claim taken since was written again by a renewal")
	}
	if v, ttl := rdb.Get(e.ctx, a.keys.claim(cls[3].player)).Val(), rdb.PTTL(e.ctx, a.keys.claim(cls[3].player)).Val(); v != cls[3].value ||
		ttl <= 0 || ttl > a.cfg.ClaimTTL {
		t.Errorf("restored claim %q with TTL %s, want %q with the lease", v, ttl, cls[3].value)
	}
	// A renewal still on its way must not bring a released claim back; and the player's
	// next call draws a generation above every earlier one, though the release deleted
	// the counter.
	a.release(e.ctx, cls[0])
	if res := a.renewAll(e.ctx, cls[:1]); !errors.Is(res[0].err, ErrClaimLost) {
		t.Errorf("renewal of a released claim: %+v, want ErrClaimLost", res[0])
	}
	next, ok, err := a.claim(e.ctx, cls[0].player)
	if err != nil || !ok || next.gen <= cls[0].gen {
		t.Errorf("the next claim after a release: generation %d (ok %t, %v), want above %d", next.gen, ok, err, cls[0].gen)
	}
}

// BenchmarkRenewClaims is the cost of one renewal round of every claim an instance holds:
// mode=each as the calls renewed before (a goroutine and a script call per claim),
// mode=pipeline as now (one pipeline). Compare with
// `benchstat -col /mode` over `go test -run '^$' -bench RenewClaims -count 10 ./asadapter/`.
func BenchmarkRenewClaims(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("claims=%d", n), func(b *testing.B) {
			e := newEnv(b)
			a := e.adapter("gw1", func(c *Config) { c.ClaimTTL = time.Hour }).a
			cls := claimPlayers(b, e, a, n)
			b.Run("mode=each", func(b *testing.B) {
				for b.Loop() {
					var wg sync.WaitGroup
					for _, cl := range cls {
						wg.Go(func() {
							if err := a.renew(e.ctx, cl); err != nil {
								b.Error(err)
							}
						})
					}
					wg.Wait()
				}
			})
			b.Run("mode=pipeline", func(b *testing.B) {
				for b.Loop() {
					for _, r := range a.renewAll(e.ctx, cls) {
						if r.err != nil {
							b.Fatal(r.err)
						}
					}
				}
			})
		})
	}
}

// Answers to one claim that come before the call reads them are merged: a claim found
// lost is never dropped for a success (the claim lapsed; a pipeline sent earlier may be
// run later), of two successes the one sent later is kept, and a success beats a failed
// request.
func TestRenewalAnswersMerge(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	ok0, ok1 := renewal{sent: t0}, renewal{sent: t0.Add(time.Second)}
	lost := renewal{sent: t0, err: fmt.Errorf("renew: %w", ErrClaimLost)}
	failed := renewal{sent: t0.Add(2 * time.Second), err: errors.New("i/o timeout")}
	for _, c := range []struct {
		name       string
		a, b, want renewal
	}{
		{"lost then ok", lost, ok1, lost},
		{"ok then lost", ok1, lost, lost},
		{"later success kept", ok1, ok0, ok1},
		{"later success replaces", ok0, ok1, ok1},
		{"success beats failure", ok0, failed, ok0},
		{"failure then success", failed, ok0, ok0},
	} {
		s := &leaseSub{results: make(chan renewal, 1)}
		s.deliver(c.a)
		s.deliver(c.b)
		got := <-s.results
		if !got.sent.Equal(c.want.sent) || (got.err == nil) != (c.want.err == nil) {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
