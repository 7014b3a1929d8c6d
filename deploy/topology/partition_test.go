package topology

import (
	"bufio"
	"encoding/json"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// partitionRedis cuts the gateway with most calls off from Redis only, with a blackhole
// route inside its namespace: it still reaches the CSCF and the far ends.
func (f *faults) partitionRedis(t *testing.T) {
	redis := f.s.Service(t, "redis").Addr
	f.partition(t, "a blackhole route to Redis", func(sv *Service) {
		ipRun(t, "-n", sv.NS, "route", "add", "blackhole", redis.String()+"/32")
	}, func(sv *Service) {
		ipRun(t, "-n", sv.NS, "route", "del", "blackhole", redis.String()+"/32")
	})
}

// partitionLink cuts the gateway with most calls off from everything: its link down.
func (f *faults) partitionLink(t *testing.T) {
	f.partition(t, "its link down", func(sv *Service) {
		ipRun(t, "link", "set", sv.Link, "down")
	}, func(sv *Service) {
		ipRun(t, "link", "set", sv.Link, "up")
	})
}

// partition puts calls on the gateways, cuts the one holding most of them off with cut,
// and checks fencing: the cut-off instance stops acting on each of its calls before
// another instance takes the call (its log says when, the survivor's re-INVITE says when),
// it sends no request in those dialogs afterwards, no dialog is driven by two instances at
// once (SIP trace at the CSCF), and each call goes on through a survivor, which also sends
// its BYE when the page hangs up. Then heal
// restores the link and the instance rejoins without a restart: ready again, and new
// connections and calls land on it.
func (f *faults) partition(t *testing.T, how string, cut, heal func(*Service)) {
	s := f.s
	rdb := redisClient(t, s)
	trace := traceSIP(t, s.Service(t, "sip"))
	pages := placeCalls(t, f.lb, 6)
	byHolder := map[string][]*goPage{}
	for _, p := range pages {
		h := claimHolder(t, rdb, p.addr())
		byHolder[h] = append(byHolder[h], p)
	}
	// The victim holds the most calls whose page's DSM connection is on it too (those
	// pages can learn of their call's new media URL only after reconnecting elsewhere),
	// else the most calls.
	victim := ""
	both := func(gw string) int {
		n := 0
		for _, p := range byHolder[gw] {
			if p.cl.Welcome().Instance == gw {
				n++
			}
		}
		return n
	}
	for _, gw := range slices.Sorted(maps.Keys(byHolder)) {
		if victim == "" || both(gw) > both(victim) || both(gw) == both(victim) && len(byHolder[gw]) > len(byHolder[victim]) {
			victim = gw
		}
	}
	sv := s.Service(t, victim)
	pid := sv.PID()
	cutOff := byHolder[victim]
	callIDs, urls, dsmOn := map[string]*goPage{}, map[*goPage]string{}, map[*goPage]string{}
	for _, p := range cutOff {
		callIDs[p.fields()["call_id"]], urls[p] = p, p.fields()["mgw_url"]
		dsmOn[p] = p.cl.Welcome().Instance
	}
	t.Logf("calls by instance: %v; cutting %s off (%s) with %d calls", counts(byHolder), victim, how, len(cutOff))

	t0 := time.Now()
	cut(sv)
	healed := false
	defer func() {
		if !healed {
			heal(sv)
		}
	}()
	for _, p := range cutOff {
		// A page whose DSM connection is on the cut-off instance sees the new media URL
		// only once it reconnected elsewhere: the instance closes its connections when
		// its change feed stops answering (otbridge), and the page comes back through the
		// load balancer to a survivor.
		d := afterInstanceLoss(t, p, t0, urls[p])
		now := p.cl.Welcome().Instance
		t.Logf("call %s continued by a survivor %s after the cut (page's DSM connection on %s, now on %s)",
			p.fields()["call_id"], d.Round(time.Millisecond), dsmOn[p], now)
		if dsmOn[p] == victim && now == victim {
			t.Errorf("page %s saw the new media URL while still connected to %s", p.sess.Client, victim)
		}
	}
	survivors := gatewayAddrs(s)
	delete(survivors, sv.Addr.String())
	pkts := trace.waitFor(t, "a survivor's re-INVITE for every call of "+victim, 15*time.Second, func(pkts []sipPacket) bool {
		for id := range callIDs {
			if len(reinviteFrom(pkts, id, survivors)) == 0 {
				return false
			}
		}
		return true
	})
	// The cut-off instance stops acting when it pauses the call (its lease ran short) or,
	// if it could not pause it, when it fences it; a pause during the cut must end in the
	// fence, never in a resume (no renewal can reach Redis).
	fenced := waitLogEvents(t, sv, "fenced: no longer acting on the call", slices.Collect(maps.Keys(callIDs)), t0)
	paused := logEvents(sv.Output(), "paused: not acting on the call until a renewal proves the claim ours", t0)
	resumed := logEvents(sv.Output(), "resumed: the claim is still ours", t0)
	for id := range callIDs {
		if at, ok := paused[id]; ok && at.Before(fenced[id]) {
			fenced[id] = at
		}
		if at, ok := resumed[id]; ok {
			t.Errorf("call %s: %s resumed it at %s, during the cut", id, victim, at.Format(time.StampMilli))
		}
	}
	for id := range callIDs {
		var taken time.Time
		for _, at := range reinviteFrom(pkts, id, survivors) {
			taken = at
		}
		t.Logf("call %s: %s stopped acting (paused or fenced) %s after the cut, a survivor's re-INVITE %s after it", id, victim,
			fenced[id].Sub(t0).Round(time.Millisecond), taken.Sub(t0).Round(time.Millisecond))
		if !fenced[id].Before(taken) {
			t.Errorf("call %s: %s stopped acting at %s, after a survivor took it at %s", id, victim,
				fenced[id].Format(time.StampMilli), taken.Format(time.StampMilli))
		}
	}

	heal(sv)
	healed = true
	t1 := time.Now()
	waitFor(t, victim+" ready again", 60*time.Second, func() bool { return strings.HasPrefix(readyz(t, s, victim), "ready") })
	t.Logf("%s ready %s after the heal", victim, time.Since(t1).Round(time.Millisecond))
	if sv.PID() != pid {
		t.Fatalf("%s was restarted", victim)
	}
	f.takesNewWork(t, victim)

	// After the heal: nothing more from the cut-off instance in the dialogs it left, and
	// no dialog driven by two instances over the whole trace.
	time.Sleep(time.Second) // a retransmission held by the cut would have gone out by now
	for _, p := range trace.packets() {
		if _, ours := callIDs[p.CallID]; ours && p.Src == sv.Addr.String() && p.Method != "" && p.At.After(fenced[p.CallID]) {
			t.Errorf("%s sent %s in dialog %s at %s, after it was fenced", victim, p.Method, p.CallID, p.At.Format(time.StampMilli))
		}
	}
	// The calls cut off went on through a survivor, which carries their hang-up too.
	for _, p := range pages {
		p.hangUp(t)
	}
	pkts = trace.waitFor(t, "a survivor's BYE for every call of "+victim, 15*time.Second, func(pkts []sipPacket) bool {
		for id := range callIDs {
			if len(byeFrom(pkts, id, survivors)) == 0 {
				return false
			}
		}
		return true
	})
	for id := range callIDs {
		if by := byeFrom(pkts, id, gatewayAddrs(s)); len(by) != 1 || by[victim] != (time.Time{}) {
			t.Errorf("call %s: BYE from %v, want one survivor", id, by)
		}
	}
	checkOneDriver(t, trace, gatewayAddrs(s))
}

// takesNewWork checks that gw serves again: a new DSM connection through nginx lands on
// it and works, and it claims a new call.
func (f *faults) takesNewWork(t *testing.T, gw string) {
	t.Helper()
	// nginx stopped sending to the instance when connections to it failed, and tries it
	// again after fail_timeout (10 s by default).
	p := waitPageOn(t, f.lb, gw, 60*time.Second)
	p.dial(t, echoURI)
	p.waitFields(t, "a call from a page on "+gw, 30*time.Second, connected)
	p.hangUp(t)
	rdb := redisClient(t, f.s)
	for range 10 {
		pages := placeCalls(t, f.lb, 3)
		took := false
		for _, q := range pages {
			took = took || claimHolder(t, rdb, q.addr()) == gw
			q.hangUp(t)
		}
		if took {
			return
		}
	}
	t.Fatalf("%s claimed none of 30 new calls after it rejoined", gw)
}

// waitPageOn opens pages through the load balancer until one's DSM connection lands on gw.
func waitPageOn(t *testing.T, lb, gw string, d time.Duration) *goPage {
	t.Helper()
	var p *goPage
	misses := 0
	waitFor(t, "a new DSM connection on "+gw, d, func() bool {
		p = newPage(t, lb)
		if p.cl.Welcome().Instance == gw {
			return true
		}
		p.cl.Close()
		// A page makes two requests through nginx's round robin (its session, then its
		// DSM connection): with two gateways and nothing else going through, every DSM
		// connection would land on the same one. One more request after every other miss
		// (steps of 2 and 3 requests in turn) reaches every gateway of two or three.
		if misses++; misses%2 == 1 {
			if res, err := http.Get(lb + "/readyz"); err == nil {
				res.Body.Close()
			}
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	return p
}

// waitLogEvents waits until a service logged msg for each call id after since, and
// returns when (the log's own time: the service's clock is the test's).
func waitLogEvents(t *testing.T, sv *Service, msg string, callIDs []string, since time.Time) map[string]time.Time {
	t.Helper()
	var got map[string]time.Time
	waitFor(t, sv.Name+" logging "+msg+" for each call", 30*time.Second, func() bool {
		got = logEvents(sv.Output(), msg, since)
		for _, id := range callIDs {
			if _, ok := got[id]; !ok {
				return false
			}
		}
		return true
	})
	return got
}

// logEvents returns, by call id, the time of the first JSON log line with msg after since.
func logEvents(out, msg string, since time.Time) map[string]time.Time {
	got := map[string]time.Time{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		var l struct {
			Time   time.Time `json:"time"`
			Msg    string    `json:"msg"`
			CallID string    `json:"call_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != msg || l.CallID == "" || l.Time.Before(since) {
			continue
		}
		if _, seen := got[l.CallID]; !seen {
			got[l.CallID] = l.Time
		}
	}
	return got
}

// ipRun runs ip(8), failing the test on an error.
func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
