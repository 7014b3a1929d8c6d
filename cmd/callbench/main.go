// Command callbench measures call setup through dsmgw: it writes player objects into the
// DSM at a fixed rate, as browsers would, against a sipp UAS (each call: player created,
// INVITE, 200, ACK, media URL written, then the browser's hangup and BYE), and reports
// setups per second, post-dial delay (player_state connecting written → mgw_url seen by a
// feed subscriber, like a browser's) p50/p99 and failures. In the same run, for the same
// rate, sipp UAC → sipp UAS directly gives the ceiling and the SIP exchange's own INVITE
// → 200 time, so the delay dsmgw adds is printed as a difference.
//
// Everything runs on loopback: a private redis-server and two sipp processes are started
// as children; the media gateway and the AS adapter run in this process, built by
// internal/gateway as cmd/gateway builds them (-workers overrides the adapter's). Each rate runs
// for at most -duration; the ladder stops at the first rate with failures or a shortfall.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

type options struct {
	rates    []int
	duration time.Duration
	settle   time.Duration
	workers  int
	verbose  bool
	baseline bool
}

func main() {
	var o options
	rates := flag.String("rates", "100,250,500,750,1000", "offered call rates (calls/s), run in order")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "load time per rate (at most 1m)")
	flag.DurationVar(&o.settle, "settle", 5*time.Second, "wait for the last calls after the load")
	flag.IntVar(&o.workers, "workers", 64, "AS adapter workers")
	flag.BoolVar(&o.baseline, "baseline", true, "also run sipp UAC → sipp UAS directly")
	flag.BoolVar(&o.verbose, "v", false, "log the adapter at info level")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (adapter, media gateway, load) to the file")
	flag.Parse()
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			fmt.Fprintf(os.Stderr, "callbench: bad rate %q\n", s)
			os.Exit(2)
		}
		o.rates = append(o.rates, r)
	}
	if o.duration > time.Minute {
		o.duration = time.Minute
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "callbench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	peers := &children{}
	defer peers.stopAll()
	st, err := startStack(ctx, peers, o, log)
	if err != nil {
		return err
	}
	defer st.close()
	fmt.Printf("callbench: %d cores, adapter workers %d, %s per rate\n\n", numCPU(), o.workers, o.duration)
	fmt.Printf("ceiling: sipp UAC → sipp UAS (sipp times are whole ms); direct: a bare sipgo UAC → the same sipp UAS\n")
	fmt.Printf("dsmgw: player written to the DSM → INVITE → 200 → ACK → mgw_url seen by a feed subscriber; added = dsmgw − direct\n\n")
	fmt.Printf("%-5s | %-27s | %-27s | %-33s | %s\n", "rate", "ceiling (sipp→sipp)", "direct SIP (sipgo→sipp)", "dsmgw (DSM → sipp UAS)", "added PDD ms")
	fmt.Printf("%-5s | %8s %6s %5s %5s | %8s %6s %6s %4s | %8s %6s %6s %4s %5s | %6s %6s\n", "/s",
		"setups/s", "p50ms", "p99ms", "fail", "setups/s", "p50ms", "p99ms", "fail", "setups/s", "p50ms", "p99ms", "fail", "calls", "p50", "p99")
	for _, rate := range o.rates {
		var ceil, base result
		if o.baseline {
			ceil, err = sippDirect(ctx, peers, rate, o.duration)
			if err != nil {
				return fmt.Errorf("ceiling at %d/s: %w", rate, err)
			}
			base, err = sipDirect(ctx, st.uas, rate, o.duration)
			if err != nil {
				return fmt.Errorf("direct SIP at %d/s: %w", rate, err)
			}
		}
		got, err := st.load(ctx, rate, o.duration, o.settle)
		if err != nil {
			return fmt.Errorf("dsmgw at %d/s: %w", rate, err)
		}
		fmt.Printf("%-5d | %8.1f %6.0f %5.0f %5d | %8.1f %6.2f %6.2f %4d | %8.1f %6.2f %6.2f %4d %5d | %+6.2f %+6.2f\n", rate,
			ceil.rate, ms(ceil.p50), ms(ceil.p99), ceil.failed,
			base.rate, ms(base.p50), ms(base.p99), base.failed,
			got.rate, ms(got.p50), ms(got.p99), got.failed, got.calls,
			ms(got.p50-base.p50), ms(got.p99-base.p99))
		if ctx.Err() != nil {
			return nil
		}
		if got.failed > 0 || got.rate < 0.9*float64(rate) {
			fmt.Printf("\nstopping the ladder: at %d/s dsmgw completed %.1f setups/s with %d failures\n", rate, got.rate, got.failed)
			break
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
