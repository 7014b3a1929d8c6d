package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"dsmgw/internal/gwchild"
	"dsmgw/internal/proc"
)

// snapshot is what is read of the gateway and Redis at a window's edge.
type snapshot struct {
	at      time.Time
	cpu     time.Duration
	redis   map[string]int     // calls per command
	metrics map[string]float64 // the gateway's /metrics
}

func (s *stack) snapshot(ctx context.Context) (snapshot, error) {
	sn := snapshot{at: time.Now(), redis: map[string]int{}}
	var err error
	if sn.cpu, err = proc.CPU(s.gw.PID()); err != nil {
		return sn, err
	}
	info, err := s.rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return sn, fmt.Errorf("redis commandstats: %w", err)
	}
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		sn.redis[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	sn.metrics, err = gwchild.Metrics(ctx, s.gwHTTP)
	return sn, err
}

// report is the outcome of a run.
type report struct {
	o             options
	fr            floodResult
	quiet, during []time.Duration
	callErr       error
	q0, q1, f1    snapshot
	rss0, rssPre  int64 // at the quiet window's start, at the flood's
	peak          int64
	rss1, rssGC   int64 // -settle after the flood, and then after a forced return to the OS
	gwLog         string
}

// reasons are the refusal reasons of the edge's metric, in the order printed.
func reasons() []string {
	return []string{"untrusted", "challenged", "bad_credentials", "rate_limited", "flood", "no_dialog", "malformed",
		"too_many_transactions", "too_many_dialogs", "too_many_connections", "unknown_user", "not_registered",
		"foreign_domain"}
}

const refusedMetric = "asadapter_sip_edge_refused_total"

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func (r *report) print() error {
	var failed []string
	fmt.Printf("\nflood: %d requests sent in %.1f s (%.0f/s), %d answers came back\n",
		r.fr.sent, r.fr.elapsed.Seconds(), float64(r.fr.sent)/r.fr.elapsed.Seconds(), r.fr.answers)

	fmt.Println("\nrefused by the gateway, by reason (flood window):")
	decided := 0.0
	for _, reason := range reasons() {
		k := refusedMetric + `{reason="` + reason + `"}`
		if n := r.f1.metrics[k] - r.q1.metrics[k]; n > 0 {
			fmt.Printf("  %-24s %10.0f\n", reason, n)
			decided += n
		}
	}
	fmt.Printf("  %-24s %10.0f (of %d sent)\n", "total", decided, r.fr.sent)

	quietCPU := r.q1.cpu - r.q0.cpu
	floodCPU := r.f1.cpu - r.q1.cpu
	extra := floodCPU - time.Duration(float64(quietCPU)*float64(r.f1.at.Sub(r.q1.at))/float64(r.q1.at.Sub(r.q0.at)))
	fmt.Printf("\ngateway CPU: quiet window %.2f s, flood window %.2f s (%.1f times the quiet window's): %.2f s for the flood\n",
		quietCPU.Seconds(), floodCPU.Seconds(), floodCPU.Seconds()/max(quietCPU.Seconds(), 1e-3), extra.Seconds())
	if decided > 0 {
		fmt.Printf("  %.2f µs per flooded request the gateway read, %.2f µs per request sent (%.0f%% of a core at %d/s)\n",
			float64(extra.Nanoseconds())/1000/decided, float64(extra.Nanoseconds())/1000/float64(r.fr.sent),
			100*extra.Seconds()/r.fr.elapsed.Seconds(), r.o.rate)
	}

	fmt.Printf("\nlegitimate calls through the CSCF, set-up (INVITE to 200), %d per window:\n", r.o.calls)
	fmt.Printf("  without the flood: median %s, max %s\n", ms(median(r.quiet)), ms(last(r.quiet)))
	if r.callErr != nil {
		failed = append(failed, "calls during the flood: "+r.callErr.Error())
	} else {
		fmt.Printf("  during the flood:  median %s, max %s (all %d connected)\n", ms(median(r.during)), ms(last(r.during)), len(r.during))
		if m := median(r.quiet); m > 0 {
			fmt.Printf("  ratio during/without: median %.2f, max %.2f\n", float64(median(r.during))/float64(m),
				float64(last(r.during))/float64(last(r.quiet)))
		}
	}

	fmt.Printf("\nRedis commands, quiet window (%.1f s) against flood window (%.1f s), same calls:\n",
		r.q1.at.Sub(r.q0.at).Seconds(), r.f1.at.Sub(r.q1.at).Seconds())
	more := 0
	for _, cmd := range sortedKeys(r.f1.redis) {
		q, f := r.q1.redis[cmd]-r.q0.redis[cmd], r.f1.redis[cmd]-r.q1.redis[cmd]
		if q == 0 && f == 0 {
			continue
		}
		fmt.Printf("  %-12s %8d %8d\n", cmd, q, f)
		// The feeds' blocking reads and the keyspace check (CONFIG GET) follow time, not
		// work; INFO is this tool's own; a rescan's tick may fall just inside one window
		// and just outside the other (the two commands allowed below).
		if cmd != "xread" && cmd != "config|get" && cmd != "info" && f > q {
			more += f - q
		}
	}
	// What reaches Redis is what passes the edge: every flood request refused there (the
	// refusals above add up to what was sent) never reached call control. The calls of the
	// flood window take their own course (a retransmission, a lease kept a moment longer),
	// so a few commands more are their timing, not the flood's; a flood that reached Redis
	// would show as one command or more per request (before the edge: a read per INVITE to
	// an unknown user), thousands here.
	allowed := 2 + r.fr.sent/20000
	fmt.Printf("  %d more during the flood than without it (%.5f per request sent; at most %d allowed)\n",
		more, float64(more)/float64(max(r.fr.sent, 1)), allowed)
	if more > allowed {
		failed = append(failed, fmt.Sprintf("%d more Redis commands during the flood", more))
	}
	if int(decided) < r.fr.sent {
		// Datagrams the kernel dropped before the gateway read them (a full buffer).
		fmt.Printf("  %d of the flood's requests were never read by the gateway\n", r.fr.sent-int(decided))
	}

	fmt.Printf("\ngateway RSS: %.1f MiB before the quiet window, %.1f MiB when the flood starts, %.1f MiB at its peak (+%.1f),\n"+
		"  %.1f MiB %s after it (%.0f%% of the flood's start), %.1f MiB once the runtime returned freed memory at once\n",
		mib(r.rss0), mib(r.rssPre), mib(r.peak), mib(r.peak-r.rssPre), mib(r.rss1), r.o.settle,
		100*float64(r.rss1)/float64(r.rssPre), mib(r.rssGC))
	// The baseline: what the quiet window alone did to the RSS (a young process's heap
	// growing to its pace, the collector's saw-tooth).
	fmt.Printf("  (the quiet window alone moved it by %+.1f MiB)\n", mib(r.rssPre-r.rss0))
	if r.peak-r.rssPre >= 50<<20 {
		failed = append(failed, "RSS grew by 50 MiB or more during the flood")
	}
	if float64(r.rss1) > 1.1*float64(r.rssPre) {
		failed = append(failed, "RSS did not come back within 10% of the flood's start")
	}

	if b, err := os.ReadFile(r.gwLog); err == nil {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		summaries, example := 0, ""
		for _, l := range lines {
			if strings.Contains(l, "SIP requests refused") {
				summaries++
				if example == "" || strings.Contains(l, r.o.source) {
					example = l
				}
			}
		}
		fmt.Printf("\ngateway log: %d lines in all, %d of them refusal summaries; one:\n  %s\n", len(lines), summaries, example)
	}
	if err := errorsJoin(failed); err != nil {
		return err
	}
	fmt.Println("\nsipflood: the calls connected, nothing of the flood reached Redis, RSS stayed within bounds and came back")
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func last(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)-1]
}
