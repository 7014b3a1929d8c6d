// Command dsmbench is the DSM load generator of issue 2's benchmark. C WebSocket clients
// share D player objects of 8 string fields: client i subscribes to player object i mod D
// and to the hot object of its group of G clients (i/G); each op sets one random field of
// one of its two objects (chosen at random) to a 32-byte value, in a closed loop (one op
// outstanding per client) or an open loop at R ops/s per client (Poisson arrivals, or
// evenly spaced with a random phase).
//
// It prints acknowledged ops/s, latency submit→ack and submit→receipt by each other
// subscriber (p50/p90/p99/max), ops never acknowledged or never received after a drain,
// gateway CPU per op and RSS (and RSS per idle connection), Redis CPU per op, and, from
// the same run, the raw capacity of Redis (closed-loop store.Commit from this process) as
// the baseline the figures are divided by. The targets are printed beside the
// figures for information.
//
// Processes: a private redis-server (unless -redis), one or more gateway instances (this
// binary re-executed in a hidden serve mode that builds the bridge role through
// internal/gateway, with the test-only AllowAll policy and a raised op rate), and the clients
// in this process, so /proc gives each its own CPU and memory. Everything is on loopback;
// children are stopped by PID on exit or signal.
//
// With -target it starts nothing and loads gateways that run already, as deployed (a load
// balancer in front, production grants and op rate): the workload then fits the grants
// (each group of G clients shares one session from GET /session, as tabs of one page do,
// and its objects lie under players/<session>/bench/; a session's key is one writer per
// object, so each client writes its own player object and only the group's first client
// also writes the hot object the group reads), and -direct measures the gateways behind
// the balancer in the same run; see target.go.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"dsmgw/internal/gateway"
)

// options are the command line of one run.
type options struct {
	c, d, g          int
	mode             string // closed | open
	rate             float64
	arrival          string // poisson | uniform
	gateways         int
	duration, warmup time.Duration
	drain, settle    time.Duration
	redis            string
	redisPID         int
	baseline         time.Duration
	baselineC        int
	keyspace         bool
	dialRate         float64
	dialConc         int
	seed             int64
	run              string // object name prefix of this run: bench/<run>/...
	out              io.Writer
	quiet            bool // tests: no progress lines
	commandLine      string

	// Against running gateways (target.go) instead of gateways of its own.
	target   []string  // base URLs the clients use (a load balancer)
	direct   []string  // the gateways behind it, measured in the same run
	cpu      []watched // process groups whose CPU the report shows
	jsonPath string    // where the figures go as JSON too
}

// Bounds of a run: it must stay a bounded, loopback-only tool on a shared machine.
const (
	maxClients  = 20000 // two loopback sockets each; the ephemeral port range holds ~28,000
	maxGateways = 8
	maxDuration = 10 * time.Minute
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveFlag {
		runServe()
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "dsmbench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	runner := func(ctx context.Context, o options) error { _, err := run(ctx, o); return err }
	if len(o.target) > 0 {
		runner = func(ctx context.Context, o options) error { _, err := runTarget(ctx, o); return err }
	}
	if err := runner(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "dsmbench:", err)
		stop()
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("dsmbench", flag.ContinueOnError)
	fs.IntVar(&o.c, "c", 50, "WebSocket clients (C)")
	fs.IntVar(&o.d, "d", 0, "player objects (D; default C: every client its own player object)")
	fs.IntVar(&o.g, "g", 10, "clients per hot object (G)")
	fs.StringVar(&o.mode, "mode", "closed", "closed (one op outstanding per client) or open (-rate per client)")
	fs.Float64Var(&o.rate, "rate", 0.2, "open loop: ops/s per client (R)")
	fs.StringVar(&o.arrival, "arrival", "poisson", "open loop: poisson or uniform (evenly spaced, random phase)")
	fs.IntVar(&o.gateways, "gateways", 1, "gateway instances; clients spread round-robin")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "measured window")
	fs.DurationVar(&o.warmup, "warmup", 3*time.Second, "load before the window")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "after the window: wait at most this long for acks and receipts")
	fs.DurationVar(&o.settle, "settle", 2*time.Second, "after connecting: idle time before reading the gateway's RSS")
	fs.StringVar(&o.redis, "redis", "", "use this Redis (host:port) instead of a private redis-server")
	fs.IntVar(&o.redisPID, "redis-pid", 0, "with -redis: its PID, for Redis CPU per op")
	fs.DurationVar(&o.baseline, "baseline", 5*time.Second, "raw store.Commit baseline window (0: skip)")
	fs.IntVar(&o.baselineC, "baseline-c", 0, fmt.Sprintf("baseline goroutines (default min(C, %d), the gateway's Redis pool)",
		gateway.DefaultConfig().RedisPool))
	fs.BoolVar(&o.keyspace, "keyspace", true, "gateways enable keyspace notifications, as the real gateway does by default")
	fs.Float64Var(&o.dialRate, "dial-rate", 500, "connects per second")
	fs.IntVar(&o.dialConc, "dial-conc", 64, "connects in progress at most")
	fs.Int64Var(&o.seed, "seed", 0, "random seed (0: from the clock)")
	fs.Func("target", "base URLs (comma-separated) of running gateways, e.g. http://127.0.0.1:8080 of a load balancer: "+
		"sessions from <url>/session, clients on <url>/dsm, objects under players/<session>/bench/ (production grants); "+
		"no gateway is started", urlList(&o.target))
	fs.Func("direct", "with -target: base URLs of the gateways behind it, measured in the same run with the same workload", urlList(&o.direct))
	fs.Func("cpu", "with -target: name=PID,... of process groups (a server and its workers) whose CPU the report shows", watchList(&o.cpu))
	fs.StringVar(&o.jsonPath, "json", "", "with -target: also write the figures to this file as JSON")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.commandLine = "dsmbench"
	for _, a := range args {
		o.commandLine += " " + a
	}
	o.out = os.Stdout
	return o, o.fill()
}

// fill checks the options and fills the defaults that depend on others.
func (o *options) fill() error {
	switch {
	case o.c < 1 || o.c > maxClients:
		return fmt.Errorf("-c %d out of 1-%d", o.c, maxClients)
	case o.g < 1:
		return fmt.Errorf("-g %d below 1", o.g)
	case o.gateways < 1 || o.gateways > maxGateways:
		return fmt.Errorf("-gateways %d out of 1-%d", o.gateways, maxGateways)
	case o.duration <= 0 || o.duration+o.warmup > maxDuration:
		return fmt.Errorf("-duration plus -warmup must be within 0-%s", maxDuration)
	case o.mode != "closed" && o.mode != "open":
		return fmt.Errorf("-mode %q: closed or open", o.mode)
	case o.mode == "open" && !rateOK(o.rate):
		return fmt.Errorf("-rate %g: must be above 0", o.rate)
	case o.arrival != "poisson" && o.arrival != "uniform":
		return fmt.Errorf("-arrival %q: poisson or uniform", o.arrival)
	case o.dialRate <= 0 || o.dialConc < 1:
		return fmt.Errorf("-dial-rate and -dial-conc must be positive")
	case o.baseline < 0 || o.baseline > maxDuration:
		return fmt.Errorf("-baseline out of 0-%s", maxDuration)
	}
	if o.d <= 0 {
		o.d = o.c
	}
	if err := o.fillTarget(); err != nil {
		return err
	}
	if o.baselineC <= 0 {
		o.baselineC = min(o.c, gateway.DefaultConfig().RedisPool)
	}
	if o.seed == 0 {
		o.seed = time.Now().UnixNano()
	}
	if o.run == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.run = hex.EncodeToString(b[:])
	}
	if o.out == nil {
		o.out = io.Discard
	}
	return nil
}
