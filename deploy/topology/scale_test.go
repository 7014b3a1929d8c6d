package topology

import (
	"context"
	"strings"
	"testing"
	"time"

	"dsmgw/otbridge/dsmclient"
)

// scaleOut starts gw3, adds it to nginx's upstream and reloads nginx, as a user scaling
// out does, and checks that gw3 takes a share of new DSM connections and of new calls
// while gw1 and gw2 run on, not restarted.
func (f *faults) scaleOut(t *testing.T) {
	s := f.s
	pids := map[string]int{"gw1": s.Service(t, "gw1").PID(), "gw2": s.Service(t, "gw2").PID()}
	t0 := time.Now()
	s.Start(t, "gw3")
	t.Logf("gw3 healthy %s after its start", time.Since(t0).Round(time.Millisecond))
	writeLBConf(t, f.lbConf, "gw1", "gw2", "gw3")
	f.reloadLB(t)

	// New connections: nginx hands them out in turn, now over three. The reload is a
	// signal: nginx's new workers take over a moment after it returns.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	instance := func() string {
		cl, err := dsmclient.Dial(ctx, dsmclient.Config{URL: "ws" + strings.TrimPrefix(f.lb, "http") + "/dsm", Token: session(t, f.lb).Token})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		return cl.Welcome().Instance
	}
	waitFor(t, "nginx's reload in effect (a connection on gw3)", 20*time.Second, func() bool { return instance() == "gw3" })
	// Every request through nginx moves its round robin on, the page's session request
	// and the stack's health checks too, and each nginx worker keeps its own: a batch of
	// nine connections missed gw3 (about one time in forty), so batches go on until gw3
	// took one (five batches miss it about once in a hundred million).
	got := map[string]int{}
	for batch := 0; got["gw3"] == 0; batch++ {
		if batch == 5 {
			t.Fatalf("gw3 took none of %d new connections: %v", 9*batch, got)
		}
		for range 9 {
			got[instance()]++
		}
	}
	t.Logf("new DSM connections through nginx: %v", got)

	// New calls: every instance hears of a new call and one claims it, so gw3 takes a
	// share; a batch of six misses gw3 one time in eleven, so batches go on until it
	// took one (five batches miss it once in a hundred thousand).
	rdb := redisClient(t, s)
	claims := map[string]int{}
	for batch := 0; claims["gw3"] == 0; batch++ {
		if batch == 5 {
			t.Fatalf("gw3 claimed none of %d new calls: %v", 6*batch, claims)
		}
		pages := placeCalls(t, f.lb, 6)
		for _, p := range pages {
			claims[claimHolder(t, rdb, p.addr())]++
		}
		for _, p := range pages {
			p.hangUp(t)
		}
		for _, p := range pages {
			p.waitFields(t, "call ended", 30*time.Second, ended)
		}
	}
	t.Logf("new calls claimed by instance: %v", claims)
	for gw, pid := range pids {
		if now := s.Service(t, gw).PID(); now != pid {
			t.Errorf("%s was restarted (pid %d, now %d)", gw, pid, now)
		}
	}
}
