// Command dsmsoak is the soak benchmark of the DSM's object life (docs/dsm-protocol.md,
// "Object life"): it opens, uses and closes page sessions in waves, and checks that Redis
// comes back to the memory it had before them. Each session is what a page does: a
// session from /session, a WebSocket to /dsm, its player object subscribed and written,
// its players index entry written, and (for the sessions that call) a call to a sipp UAS
// placed through the real AS adapter and ended; then the page closes. The gateway's
// janitor removes what the session left once its client key has been absent for the grace
// period.
//
// Processes: a private redis-server, a sipp UAS, and one gateway (this binary re-executed
// in a hidden serve mode that builds the bridge, asadapter and mediagw roles through
// internal/gateway, with DSM_GRACE and DSM_FEED_MAX_AGE shortened so a run ends in
// minutes), and the pages in this process, so /proc gives the gateway its own RSS.
//
// Phases: a warm-up wave, then the wait until everything it left is gone (writer index,
// presence and feed streams empty): the baseline is taken there (Redis key count,
// used_memory, the gateway's RSS after returning freed memory to the OS). Then the waves
// of the soak, and the same wait; the report compares. With -keep the janitor never
// removes anything (a grace period of a year): the figures are then what every session
// leaves behind without it, the "before" of the object life.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// options are the command line of one run.
type options struct {
	sessions, warmup int
	calls            float64 // fraction of the sessions that place a call
	conc             int     // pages open at once
	live             int     // pages connected for the whole run
	wave             int     // sessions per wave
	grace, feedAge   time.Duration
	keep             bool
	verbose          bool          // MEMORY USAGE of every key at the baseline and after
	settle           time.Duration // the longest wait for the janitor after a phase
}

// Bounds of a run on a shared machine: loopback only, and bounded in time and sockets.
const (
	maxSessions = 1_000_000
	maxConc     = 2000
)

func parseFlags(args []string) (options, error) {
	fs := flag.NewFlagSet("dsmsoak", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.sessions, "sessions", 100000, "page sessions of the soak")
	fs.IntVar(&o.warmup, "warmup", 2000, "page sessions before the baseline (caps reached, pools grown)")
	fs.Float64Var(&o.calls, "calls", 1, "fraction of the sessions that place and end a call (0..1)")
	fs.IntVar(&o.conc, "c", 100, "pages open at once")
	fs.IntVar(&o.live, "live", 1000, "pages that stay connected for the whole run (kept by every janitor round)")
	fs.IntVar(&o.wave, "wave", 10000, "sessions per wave (a progress line each)")
	fs.DurationVar(&o.grace, "grace", 5*time.Second, "DSM_GRACE of the gateway")
	fs.DurationVar(&o.feedAge, "feed-age", 10*time.Second, "DSM_FEED_MAX_AGE of the gateway")
	fs.BoolVar(&o.keep, "keep", false, "no janitor removals (grace of a year): measure what sessions leave without them")
	fs.BoolVar(&o.verbose, "v", false, "print MEMORY USAGE of every key at the baseline and after")
	fs.DurationVar(&o.settle, "settle", 3*time.Minute, "the longest wait for the janitor after a phase")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.sessions < 1 || o.sessions > maxSessions:
		return o, fmt.Errorf("-sessions must be 1..%d", maxSessions)
	case o.conc < 1 || o.conc > maxConc:
		return o, fmt.Errorf("-c must be 1..%d", maxConc)
	case o.calls < 0 || o.calls > 1:
		return o, fmt.Errorf("-calls must be 0..1")
	case o.live < 0 || o.live > maxConc*5:
		return o, fmt.Errorf("-live must be 0..%d", maxConc*5)
	case o.wave < 1 || o.warmup < 0:
		return o, fmt.Errorf("-wave must be positive, -warmup not negative")
	case o.grace <= 0 || o.feedAge <= 0:
		return o, fmt.Errorf("-grace and -feed-age must be positive")
	}
	if o.keep {
		o.grace = 365 * 24 * time.Hour
	}
	return o, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveFlag {
		runServe()
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsmsoak:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if _, err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dsmsoak:", err)
		stop()
		os.Exit(1)
	}
}
