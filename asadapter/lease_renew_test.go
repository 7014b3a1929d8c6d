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

// One pipeline renews each claim against its own value: a claim another instance took
// and a claim that expired are reported lost, the others extended; Redis having lost
// its cached scripts (a restart) changes nothing.
func TestRenewAllChecksEachClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.adapter("gw1", nil).a
	cls := claimPlayers(t, e, a, 3)
	rdb := e.st.Redis()
	if err := rdb.Set(e.ctx, a.keys.claim(cls[1].player), "gw2/7", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Del(e.ctx, a.keys.claim(cls[2].player)).Err(); err != nil {
		t.Fatal(err)
	}
	// A short TTL on the kept claim: the renewal must set it back to the lease.
	if err := rdb.PExpire(e.ctx, a.keys.claim(cls[0].player), 100*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ScriptFlush(e.ctx).Err(); err != nil {
		t.Fatal(err)
	}
	errs := a.renewAll(e.ctx, cls)
	if errs[0] != nil {
		t.Errorf("renewal of a claim we hold: %v", errs[0])
	}
	for _, i := range []int{1, 2} {
		if !errors.Is(errs[i], ErrClaimLost) {
			t.Errorf("renewal of claim %d (taken or gone): %v, want ErrClaimLost", i, errs[i])
		}
	}
	if ttl := rdb.PTTL(e.ctx, a.keys.claim(cls[0].player)).Val(); ttl > a.cfg.ClaimTTL {
		t.Errorf("kept claim's TTL %s after the renewal, want at most the lease %s", ttl, a.cfg.ClaimTTL)
	}
	if v := rdb.Get(e.ctx, a.keys.claim(cls[1].player)).Val(); v != "gw2/7" {
		t.Errorf("another instance's claim now %q, want it untouched", v)
	}
	if n := rdb.Exists(e.ctx, a.keys.claim(cls[2].player)).Val(); n != 0 {
		t.Errorf("an expired claim was written again by a renewal")
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
					for _, err := range a.renewAll(e.ctx, cls) {
						if err != nil {
							b.Fatal(err)
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
