package asadapter

import (
	"syscall"
	"testing"
	"time"

	"dsmgw/store"
)

// pauseLease is the lease of the pause tests: Redis is stopped right after a renewal and
// let go as soon as the owner paused the call (at three quarters of the lease), so the
// claim is a quarter lease (1 s) from expiring when Redis runs again: a margin that a
// loaded test machine does not eat.
const pauseLease = 4 * time.Second

// freshClaim waits until the player's claim was renewed within the last tenth of its
// lease: a stop of Redis now leaves the claim nearly a whole lease.
func (e *env) freshClaim(player string) {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ttl, err := e.st.Redis().PTTL(e.ctx, "asadapter:claim:"+player).Result()
		if err != nil {
			e.t.Fatal(err)
		}
		if ttl >= pauseLease-pauseLease/10 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("claim of %s not renewed (ttl %s)", player, ttl)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopRedis freezes the test's redis-server (SIGSTOP) until the returned function (or the
// test's end) lets it go.
func (e *env) stopRedis() (cont func()) {
	e.t.Helper()
	if err := syscall.Kill(e.redis.PID, syscall.SIGSTOP); err != nil {
		e.t.Fatal(err)
	}
	cont = func() { _ = syscall.Kill(e.redis.PID, syscall.SIGCONT) }
	e.t.Cleanup(cont)
	return cont
}

// waitCounter waits until a counter reaches n.
func waitCounter(t *testing.T, what string, get func() float64, n float64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for get() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v, want %v", what, get(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A call whose renewals go unanswered for three quarters of its lease (Redis stalled) is
// paused, not handed over: once Redis answers again and the renewal finds the claim still
// ours, the call resumes on the same instance without a word to the far end (sipp's
// scenario has no room for a re-INVITE), the media flows again and the page's hang-up is
// carried out as usual.
func TestPausedCallResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "answer.xml")
	lease := func(c *Config) { c.ClaimTTL = pauseLease }
	inst := map[string]*instance{"gw1": e.adapter("gw1", lease), "gw2": e.adapter("gw2", lease)}
	p := "players/paula/audio"
	e.dial(p, sippTarget(s.Addr))
	before := e.waitField(p, "mgw_state", "connected")
	m := attachMedia(t, before["mgw_url"])
	defer m.close()
	m.waitReceived(t, 10) // sipp echoes what the page sends
	owner, gen := e.callOwner(p)
	a := inst[owner].a

	e.freshClaim(p)
	cont := e.stopRedis()
	waitCounter(t, "pauses", func() float64 { return counterValue(t, a.met.pauses.WithLabelValues("paused")) }, 1)
	cont()
	waitCounter(t, "resumed pauses", func() float64 { return counterValue(t, a.met.pauses.WithLabelValues("resumed")) }, 1)
	if f := counterValue(t, a.met.fenced); f != 0 {
		t.Fatalf("%s fenced %v calls, want none", owner, f)
	}

	// The same instance, the same generation, the same media URL, and media both ways
	// again (the echo needs the page's packets to reach sipp).
	got := <-m.received
	m.waitReceived(t, got+25)
	if now, g := e.callOwner(p); now != owner || g != gen {
		t.Fatalf("claim after the pause: %s generation %s, want %s %s", now, g, owner, gen)
	}
	if fl := e.fields(p); fl["mgw_url"] != before["mgw_url"] || fl["mgw_state"] != "connected" {
		t.Fatalf("after the pause: %v (before %v)", fl, before)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // INVITE, ACK, BYE: nothing else reached the far end
	e.waitNoTerminations()
}

// A call paused while Redis stays away longer than the pause limit is fenced for good:
// its claim has expired meanwhile, and once Redis is back another instance (or the same
// one, in a new generation) takes the call over with a re-INVITE in the same dialog.
func TestPausedCallFencedAfterLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s, inst, target := e.farEnd(t, "takeover.xml", func(c *Config) { c.ClaimTTL = pauseLease })
	p := "players/pablo/audio"
	e.dial(p, target)
	before := e.waitField(p, "mgw_state", "connected")
	m := attachMedia(t, before["mgw_url"])
	m.waitReceived(t, 10)
	owner, gen := e.callOwner(p)
	a := inst[owner].a

	cont := e.stopRedis()
	waitCounter(t, "pauses ended by a fence", func() float64 { return counterValue(t, a.met.pauses.WithLabelValues("fenced")) }, 1)
	cont()
	if r := counterValue(t, a.met.pauses.WithLabelValues("resumed")); r != 0 {
		t.Fatalf("%s resumed %v pauses, want none", owner, r)
	}
	after := e.waitMoved(p, before["mgw_url"])
	m.close()
	m = attachMedia(t, after["mgw_url"])
	defer m.close()
	m.waitReceived(t, 25)
	if _, g := e.callOwner(p); g == gen {
		t.Fatalf("claim generation %s after the takeover, want a new one", g)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // INVITE, ACK, the takeover's re-INVITE, ACK, BYE
}
