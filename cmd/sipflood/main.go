// Command sipflood measures what a flood from one untrusted source costs a gateway: it
// starts a private redis-server, Kamailio as the CSCF and one gateway (this binary in
// gwchild's serve mode: built as sipflood is, without -race under go run), registers a
// page user whose calls it answers as the page would, and then
//
//   - places -calls calls from a sipp phone through the CSCF to the user, in a quiet window
//     of -duration plus 2 s (the baseline);
//   - floods the gateway from -source (INVITEs to the user and to users that do not exist,
//     REGISTERs) at -rate requests per second for -duration while the same calls are
//     placed, in a window as long as the quiet one;
//   - waits -settle.
//
// It reports the gateway's CPU per flooded request (beyond the quiet window's), the calls'
// set-up time (INVITE to 200) without and during the flood, the Redis commands of both
// windows, the refusals by reason and the gateway's RSS at start, at its peak during the
// flood and after -settle; it fails if a call did not connect, a command more reached
// Redis during the flood, the RSS grew by 50 MiB or more, or did not come back within 10%.
//
//	go run ./cmd/sipflood -rate 20000 -duration 10s
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/gwchild"
	"dsmgw/internal/proc"
)

//go:embed call.xml
var callScenario []byte

func main() {
	gwchild.MaybeServe()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sipflood:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	rate             int
	duration, settle time.Duration
	calls            int
	source, root     string
	keep             string
}

func run() error {
	var o options
	flag.IntVar(&o.rate, "rate", 20000, "flood requests per second")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the flood, and of the quiet window before it")
	flag.DurationVar(&o.settle, "settle", time.Minute, "wait after the flood before the last RSS reading")
	flag.IntVar(&o.calls, "calls", 5, "legitimate calls in each window")
	flag.StringVar(&o.source, "source", "127.0.0.2", "the flooding source (a loopback address the gateway does not trust)")
	flag.StringVar(&o.root, "root", ".", "the module root (for deploy/kamailio.cfg)")
	flag.StringVar(&o.keep, "keep", "", "folder for the logs (default: a temporary one, removed)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir := o.keep
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sipflood-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	scenario := filepath.Join(dir, "call.xml")
	if err := os.WriteFile(scenario, callScenario, 0o644); err != nil {
		return err
	}
	s, err := startStack(ctx, o.root, dir)
	defer s.stop()
	if err != nil {
		return err
	}
	pctx, stopPage := context.WithCancel(ctx)
	pageErr := make(chan error, 1)
	go func() { pageErr <- s.page(pctx) }()
	defer func() { stopPage(); <-pageErr }()
	fmt.Printf("sipflood: gateway pid %d (SIP %s), CSCF %s, page user %s; flood %d/s from %s for %s\n",
		s.gw.PID(), s.gwSIP, s.kamAddr, user, o.rate, o.source, o.duration)
	if _, err := calls(ctx, s, scenario, 1, "warm-up"); err != nil {
		return err
	}

	// Both windows last the flood plus room for its last answers and the calls after it,
	// and exactly as long as each other: the gateway's periodic work (a rescan and a
	// keyspace check every 5 s) then falls in each alike, and what Redis counted more in
	// the flood window is what the flood cost.
	window := o.duration + 2*time.Second

	// The quiet window: the calls alone.
	rss0, _ := proc.RSS(s.gw.PID())
	q0, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	time.Sleep(o.duration / 10) // where the flood window's calls start too
	quiet, err := calls(ctx, s, scenario, o.calls, "quiet")
	if err != nil {
		return err
	}
	// More calls than the window holds lengthen both windows alike.
	window = max(window, time.Since(start)+time.Second)
	time.Sleep(time.Until(start.Add(window)))
	q1, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	rssPre, _ := proc.RSS(s.gw.PID())

	// The flood window: the same calls during the flood.
	var peak int64
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() { defer close(sampled); peak = sampleRSS(sampling, s.gw.PID()) }()
	var fr floodResult
	var ferr error
	fstart := time.Now()
	flooded := make(chan struct{})
	go func() { defer close(flooded); fr, ferr = flood(ctx, o.source, s.gwSIP, o.rate, o.duration) }()
	time.Sleep(o.duration / 10)
	during, cerr := calls(ctx, s, scenario, o.calls, "flood")
	<-flooded
	stopSampling()
	<-sampled
	if ferr != nil {
		return ferr
	}
	if late := time.Since(fstart) - window; late > 0 {
		fmt.Printf("the flood window's calls ended %s after the window: it is the longer\n", late)
	}
	time.Sleep(time.Until(fstart.Add(window)))
	f1, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("settling %s for the last RSS reading...\n", o.settle)
	time.Sleep(o.settle)
	rss1, _ := proc.RSS(s.gw.PID())
	// And once the runtime has been asked to return what it freed (gwchild's SIGUSR1).
	_ = syscall.Kill(s.gw.PID(), syscall.SIGUSR1)
	time.Sleep(time.Second)
	rssGC, _ := proc.RSS(s.gw.PID())

	r := report{o: o, fr: fr, quiet: quiet, during: during, callErr: cerr, q0: q0, q1: q1, f1: f1,
		rss0: rss0, rssPre: rssPre, peak: peak, rss1: rss1, rssGC: rssGC, gwLog: s.gwLog}
	return r.print()
}

// sampleRSS returns the highest RSS of pid seen every 50 ms until ctx ends.
func sampleRSS(ctx context.Context, pid int) int64 {
	var peak int64
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if r, err := proc.RSS(pid); err == nil && r > peak {
			peak = r
		}
		select {
		case <-ctx.Done():
			return peak
		case <-t.C:
		}
	}
}

// median returns the middle of sorted durations.
func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[len(d)/2]
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// errorsJoin joins check failures.
func errorsJoin(f []string) error {
	if len(f) == 0 {
		return nil
	}
	return errors.New("checks failed:\n  " + strings.Join(f, "\n  "))
}
