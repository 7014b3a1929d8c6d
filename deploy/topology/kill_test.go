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
// no acknowledged op; the dead instance's calls go on through a survivor
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
	callIDs, urls := map[*goPage]string{}, map[*goPage]string{}
	for _, p := range lost {
		callIDs[p], urls[p] = p.fields()["call_id"], p.fields()["mgw_url"]
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
		d := afterInstanceLoss(t, p, t0, urls[p])
		last = max(last, d)
	}
	t.Logf("SIGKILL of %s to its %d calls continued by a survivor: %s (call lease %s)",
		victim, len(lost), last.Round(time.Millisecond), env(s.Project.Services[victim], "SIP_CALL_LEASE"))

	// Every call of the dead instance was re-INVITEd by one survivor, which also carries
	// the page's hang-up (its BYE); no dialog was driven by two instances at once.
	delete(gateways, s.Service(t, victim).Addr.String())
	pkts := trace.waitFor(t, "a re-INVITE for every call of "+victim, 15*time.Second, func(pkts []sipPacket) bool {
		for _, p := range lost {
			if len(reinviteFrom(pkts, callIDs[p], gateways)) == 0 {
				return false
			}
		}
		return true
	})
	heir := map[*goPage]string{}
	for _, p := range lost {
		by := reinviteFrom(pkts, callIDs[p], gateways)
		if len(by) != 1 {
			t.Errorf("call %s of %s: re-INVITE from %v, want one survivor", callIDs[p], victim, by)
			continue
		}
		for gw, at := range by {
			heir[p] = gw
			t.Logf("call %s: re-INVITE from %s %s after the SIGKILL", callIDs[p], gw, at.Sub(t0).Round(time.Millisecond))
		}
		p.hangUp(t)
	}
	pkts = trace.waitFor(t, "a BYE for every call of "+victim, 15*time.Second, func(pkts []sipPacket) bool {
		for _, p := range lost {
			if len(byeFrom(pkts, callIDs[p], gateways)) == 0 {
				return false
			}
		}
		return true
	})
	for _, p := range lost {
		if by := byeFrom(pkts, callIDs[p], gateways); len(by) != 1 || by[heir[p]].IsZero() {
			t.Errorf("call %s of %s: BYE from %v, want %s, which continued it", callIDs[p], victim, by, heir[p])
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
// long after the loss (at t0) it was done. It is the one place that says what that is: a
// survivor continues the call (the same call, connected, with a media URL of its own in
// place of url); a call that fails instead fails the test at once.
func afterInstanceLoss(t *testing.T, p *goPage, t0 time.Time, url string) time.Duration {
	t.Helper()
	callID := p.fields()["call_id"]
	// A failure deadline, not a timing assertion: the claim lease (1 s) and a re-INVITE,
	// with room for a loaded machine.
	f := p.waitFields(t, "call of the lost instance continued by a survivor", 60*time.Second, func(f map[string]string) bool {
		if f["mgw_state"] == "failed" || f["player_state"] == "failed" || f["call_id"] != callID {
			t.Fatalf("call %s of the lost instance did not go on: %v", callID, f)
		}
		return f["mgw_state"] == "connected" && f["mgw_url"] != "" && f["mgw_url"] != url
	})
	if f["player_state"] != "connected" {
		t.Fatalf("call %s continued, but the page shows %v", callID, f)
	}
	return time.Since(t0)
}

func counts(m map[string][]*goPage) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}
