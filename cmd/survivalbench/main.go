// Command survivalbench measures the media gap of a call whose gateway instance is lost
// (docs/call-survival.md). Each run places one call from a page (a DSM client writing the
// player as the page does, with the page's media WebSocket) to a SIP phone (a UAS of
// its own on loopback, sending and receiving a 20 ms PCMU frame every 20 ms), waits for
// media both ways, then loses the instance holding the call:
//
//   - kill: SIGKILL, as a crash;
//   - freeze: SIGSTOP, as an instance cut off from everything (Redis, the phone, the
//     page) without its sockets closing; it is thawed (SIGCONT) once the call goes on
//     elsewhere, and must then stay silent in the dialog it lost (fencing).
//
// The other instance takes the call over (a re-INVITE to the phone, a new media URL to
// the page) and the run measures, at both ends, the media gap: the longest interval
// between two frames arriving around the fault (first missing to first restored frame,
// plus one frame time). Beside it: the normal longest interval in the second before the
// fault (the baseline), the time from the fault to the new media URL, and any request
// the lost instance sent in the dialog after the fault (must be none). The phone answers
// along Via, so the benchmark needs no proxy.
//
// Everything runs on loopback: a private redis-server, and the gateway instances as
// children of this binary (its hidden serve mode), built by internal/gateway as
// cmd/gateway builds them with the AS adapter and media gateway roles. A killed instance
// is replaced by a new one for the next run.
//
// With -soak-calls, it then keeps that many calls up for -soak-for while goroutines of its
// own keep every CPU busy, and counts false takeovers (calls fenced and moved although
// their instance lives).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"time"
)

type options struct {
	runs      int
	faults    []string
	lease     time.Duration
	soakCalls int
	soakFor   time.Duration
	burn      int
	keep      bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveFlag {
		runServe()
		return
	}
	var o options
	faults := flag.String("faults", "kill,freeze", "faults to measure, in order: kill (SIGKILL), freeze (SIGSTOP, then SIGCONT)")
	flag.IntVar(&o.runs, "runs", 20, "runs per fault")
	flag.DurationVar(&o.lease, "lease", time.Second, "call lease of the gateways (SIP_CALL_LEASE)")
	flag.IntVar(&o.soakCalls, "soak-calls", 0, "after the faults, keep this many calls up with the CPU busy and count false takeovers (0: no soak)")
	flag.DurationVar(&o.soakFor, "soak-for", 10*time.Minute, "how long the soak lasts")
	flag.IntVar(&o.burn, "burn", runtime.NumCPU(), "goroutines spinning during the soak (busy CPU)")
	flag.BoolVar(&o.keep, "keep", false, "keep the gateways' logs")
	flag.Parse()
	for _, f := range strings.Split(*faults, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if f != "kill" && f != "freeze" {
			fmt.Fprintf(os.Stderr, "survivalbench: unknown fault %q\n", f)
			os.Exit(2)
		}
		o.faults = append(o.faults, strings.TrimSpace(f))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "survivalbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := startBench(ctx, o, log)
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Printf("survivalbench: %d runs per fault, call lease %s\n", o.runs, o.lease)
	if o.keep {
		fmt.Printf("gateway logs in %s\n", b.dir)
	}
	for _, fault := range o.faults {
		var rs []result
		failed := 0
		for i := range o.runs {
			r, err := b.once(ctx, fault)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				failed++
				fmt.Fprintf(os.Stderr, "%s run %d: %v\n", fault, i+1, err)
				continue
			}
			rs = append(rs, r)
		}
		report(fault, rs, failed)
	}
	if o.soakCalls > 0 {
		return b.soak(ctx, o.soakCalls, o.soakFor, o.burn)
	}
	return nil
}

// result is what one run measured.
type result struct {
	pageGap, farGap           time.Duration // longest interval between frames around the fault
	pageBaseline, farBaseline time.Duration // longest interval in the second before it
	moved                     time.Duration // fault → the new media URL in the player
	stale                     int           // requests of the lost instance in the dialog after the fault
}

// report prints the percentiles of a fault's runs.
func report(fault string, rs []result, failed int) {
	fmt.Printf("\n%s: %d runs, %d failed (call not continued)\n", fault, len(rs)+failed, failed)
	if len(rs) == 0 {
		return
	}
	pick := func(f func(result) time.Duration) []time.Duration {
		out := make([]time.Duration, len(rs))
		for i, r := range rs {
			out[i] = f(r)
		}
		slices.Sort(out)
		return out
	}
	row := func(name string, v []time.Duration) {
		fmt.Printf("  %-34s p50 %8s  p99 %8s  max %8s\n", name, pct(v, 50), pct(v, 99), v[len(v)-1].Round(time.Millisecond))
	}
	page := pick(func(r result) time.Duration { return r.pageGap })
	far := pick(func(r result) time.Duration { return r.farGap })
	row("media gap at the page", page)
	row("media gap at the phone", far)
	row("fault → new media URL", pick(func(r result) time.Duration { return r.moved }))
	row("baseline at the page (no fault)", pick(func(r result) time.Duration { return r.pageBaseline }))
	row("baseline at the phone (no fault)", pick(func(r result) time.Duration { return r.farBaseline }))
	stale := 0
	for _, r := range rs {
		stale += r.stale
	}
	fmt.Printf("  requests of the lost instance in its dialogs after the fault: %d\n", stale)
}

// pct is the p-th percentile of sorted v (nearest rank; with 20 runs p99 is the maximum).
func pct(v []time.Duration, p int) time.Duration {
	i := (len(v)*p + 99) / 100
	return v[max(i-1, 0)].Round(time.Millisecond)
}

// maxGap returns the longest interval between consecutive arrivals within [from, to].
func maxGap(arrivals []time.Time, from, to time.Time) time.Duration {
	var best time.Duration
	var last time.Time
	for _, a := range arrivals {
		if a.Before(from) || a.After(to) {
			continue
		}
		if !last.IsZero() {
			best = max(best, a.Sub(last))
		}
		last = a
	}
	return best
}
