package topology

import (
	"maps"
	"slices"
	"syscall"
	"testing"
	"time"
)

// kill SIGKILLs the gateway holding the most calls while pages are in calls and DSM
// clients write through nginx. The clients reconnect through nginx to a survivor and lose
// no acknowledged op; the dead instance's calls are dealt with by a survivor
// (afterInstanceLoss), and the test logs how long that took from the SIGKILL.
func (f *faults) kill(t *testing.T) {
	s := f.s
	rdb := redisClient(t, s)
	trace := traceSIP(t, s.Service(t, "sip"))
	gateways := gatewayAddrs(s)
	load := startDSMLoad(t, f.lb, 6)
	pages := placeCalls(t, f.lb, 6)
	byHolder := map[string][]*goPage{}
	for _, p := range pages {
		h := claimHolder(t, rdb, p.addr())
		byHolder[h] = append(byHolder[h], p)
	}
	victim := ""
	for _, gw := range slices.Sorted(maps.Keys(byHolder)) {
		if victim == "" || len(byHolder[gw]) > len(byHolder[victim]) {
			victim = gw
		}
	}
	lost := byHolder[victim]
	callIDs := map[*goPage]string{}
	for _, p := range lost {
		callIDs[p] = p.fields()["call_id"]
	}
	t.Logf("calls by instance: %v; killing %s with %d calls", counts(byHolder), victim, len(lost))

	onVictim := load.on(victim)
	if len(onVictim) == 0 {
		t.Fatalf("no DSM client of the load on %s: the test would not see them reconnect", victim)
	}
	t0 := time.Now()
	if err := s.Service(t, victim).Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var last time.Duration
	for _, p := range lost {
		d := afterInstanceLoss(t, p, t0)
		last = max(last, d)
	}
	t.Logf("SIGKILL of %s to its %d calls ended by a survivor: %s (claim TTL 10 s + rescan 5 s at most)",
		victim, len(lost), last.Round(time.Millisecond))

	// Every call of the dead instance got its BYE from one survivor; no dialog was driven
	// by two instances.
	delete(gateways, s.Service(t, victim).Addr.String())
	pkts := trace.waitFor(t, "a BYE for every call of "+victim, 15*time.Second, func(pkts []sipPacket) bool {
		for _, p := range lost {
			if len(byeFrom(pkts, callIDs[p], gateways)) == 0 {
				return false
			}
		}
		return true
	})
	for _, p := range lost {
		by := byeFrom(pkts, callIDs[p], gateways)
		if len(by) != 1 {
			t.Errorf("call %s of %s: BYE from %v, want one survivor", callIDs[p], victim, by)
			continue
		}
		for gw, at := range by {
			t.Logf("call %s: BYE from %s %s after the SIGKILL", callIDs[p], gw, at.Sub(t0).Round(time.Millisecond))
		}
	}
	checkOneDriver(t, trace, gatewayAddrs(s))

	// The DSM clients that were on the dead instance reconnected through nginx to a
	// survivor (and resumed: stopAndCheck checks their ops and views).
	waitFor(t, "the DSM clients of "+victim+" on survivors", 30*time.Second, func() bool {
		for _, c := range onVictim {
			if c.Welcome().Instance == victim {
				return false
			}
		}
		return true
	})
	acked, reconnects := load.stopAndCheck(t, f.lb)
	t.Logf("%d DSM clients were on %s; all reconnected to survivors", len(onVictim), victim)
	t.Logf("DSM load over the SIGKILL: %d ops acknowledged, none lost; %d reconnects through nginx", acked, reconnects)
	for _, p := range pages {
		if !slices.Contains(lost, p) {
			p.hangUp(t)
		}
	}
	t1 := time.Now()
	s.Restart(t, victim)
	t.Logf("%s restarted and healthy in %s", victim, time.Since(t1).Round(time.Millisecond))
}

// afterInstanceLoss waits for what happens to a call whose instance died, and returns how
// long after the loss (at t0) it was done. It is the one place that says what that is:
// today a survivor ends the call cleanly (BYE to the far end, the player marked failed
// with the reason "gateway instance lost"); the call-survival work changes it to a call
// that continues on a survivor.
func afterInstanceLoss(t *testing.T, p *goPage, t0 time.Time) time.Duration {
	t.Helper()
	// A failure deadline, not a timing assertion: the claim TTL (10 s) plus the rescan
	// (5 s), with room for a loaded machine.
	p.waitFields(t, "call of the lost instance ended by a survivor", 60*time.Second, func(f map[string]string) bool {
		return f["mgw_state"] == "failed" && f["sip_reason"] == "gateway instance lost"
	})
	return time.Since(t0)
}

func counts(m map[string][]*goPage) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}
