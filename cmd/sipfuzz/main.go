// Command sipfuzz is the network fuzz run of the SIP edge: it starts a private
// redis-server and a gateway (this binary in gwchild's serve mode, so without -race under
// go run) and sends it mutated SIP messages of the project's own seeds (internal/sipfuzz)
// over UDP and TCP, from inside the trust domain (127.0.0.1: the SIP stack and call
// control see them) and from outside (127.0.0.3: the edge answers), a quarter of -n each.
// It fails unless the gateway is still running, answered every well-formed request, and
// its goroutines and live heap came back once the run's transactions ended.
//
//	go run ./cmd/sipfuzz -n 100000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/gwchild"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
	"dsmgw/internal/sipfuzz"
)

// transactionsEnd is how long the last transactions of a run live: a non-INVITE server
// transaction over UDP stays 32 s after its answer (Timer J), an INVITE one 32 s when no
// ACK comes (Timer H); the gateway is measured after that. settle bounds a further wait
// for its goroutines and heap to come back.
const (
	transactionsEnd = 35 * time.Second
	settle          = 60 * time.Second
)

func main() {
	gwchild.MaybeServe()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sipfuzz:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 100000, "messages in all (a quarter per transport and source)")
	rate := flag.Int("rate", 5000, "messages per second at most")
	window := flag.Int("window", 200, "well-formed requests awaiting their answer at most")
	seed := flag.Uint64("seed", uint64(time.Now().UnixNano()), "the mutator's seed (printed, to replay a run)")
	root := flag.String("root", ".", "the module root, where the seeds are")
	keep := flag.String("keep", "", "folder for the gateway's and Redis's logs (default: a temporary one, removed)")
	only := flag.String("only", "", "run only these of udp/127.0.0.1, tcp/127.0.0.1, udp/127.0.0.3, tcp/127.0.0.3 (comma-separated)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	seeds, err := sipfuzz.LoadCorpus(*root)
	if err != nil {
		return err
	}
	dir := *keep
	if dir == "" {
		if dir, err = os.MkdirTemp("", "sipfuzz-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rs, err := redisrun.Start(ctx, redisrun.Options{Dir: dir, Proc: proc.Options{Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		return err
	}
	defer rs.Stop()
	port, err := proc.FreePort()
	if err != nil {
		return err
	}
	sip := "127.0.0.1:" + strconv.Itoa(port)
	env := []string{"GATEWAY_ROLES=asadapter,mediagw", "HTTP_ADDR=127.0.0.1:0", "REDIS_ADDRS=" + rs.Addr,
		"INSTANCE=fuzzed", "MGW_SECRET=sipfuzz-secret-0123456789", "USERS_SECRET=sipfuzz-secret-0123456789",
		"SIP_LISTEN_UDP=" + sip, "SIP_LISTEN_TCP=" + sip, "SIP_TRUSTED_PEERS=127.0.0.1",
		// Outside the trust domain the fuzz is answered, not rate-limited: the limits
		// have tests of their own, and an unanswered request must mean a fault here.
		"SIP_SOURCE_RATE=1000000", "SIP_SOURCE_DROP_RATE=1000000", "LOG_LEVEL=warn",
		"MGW_PORT_MIN=40000", "MGW_PORT_MAX=40099"}
	logPath := filepath.Join(dir, "gateway.log")
	gw, httpAddr, err := gwchild.Start(ctx, "gateway", env, logPath)
	if err != nil {
		return err
	}
	defer gw.Stop()
	g0, h0, r0, err := stats(ctx, httpAddr, gw.PID())
	if err != nil {
		return err
	}
	fmt.Printf("sipfuzz: %d seeds, seed %d, gateway pid %d at %s (SIP %s)\n", len(seeds), *seed, gw.PID(), httpAddr, sip)
	fmt.Printf("%-4s %-10s %8s %8s %8s %10s %10s %8s\n", "tp", "source", "sent", "wellform", "answered", "unanswered", "reconnects", "seconds")
	var failed []string
	for i, m := range []struct{ transport, ip string }{
		{"udp", "127.0.0.1"}, {"tcp", "127.0.0.1"}, {"udp", "127.0.0.3"}, {"tcp", "127.0.0.3"},
	} {
		if *only != "" && !strings.Contains(","+*only+",", ","+m.transport+"/"+m.ip+",") {
			continue
		}
		res, err := sipfuzz.Run(ctx, sipfuzz.Config{Gateway: sip, LocalIP: m.ip, Transport: m.transport,
			Messages: *n / 4, Rate: *rate, Window: *window, Seed: *seed + uint64(i)}, seeds)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s from %s: %v", m.transport, m.ip, err))
		}
		fmt.Printf("%-4s %-10s %8d %8d %8d %10d %10d %8.1f\n", m.transport, m.ip, res.Sent, res.WellFormed,
			res.Answered, res.UnansweredN, res.Reconnects, res.Elapsed.Seconds())
		if res.BadStreamSample != "" {
			failed = append(failed, fmt.Sprintf("%s from %s: the gateway's answers could not be framed: %s",
				m.transport, m.ip, res.BadStreamSample))
		}
		if res.UnansweredN > 0 {
			failed = append(failed, fmt.Sprintf("%s from %s: %d unanswered, first:\n%s", m.transport, m.ip,
				res.UnansweredN, strings.Join(res.Unanswered, "\n----\n")))
		}
		select {
		case <-gw.Done():
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("the gateway died (%v); its log:\n%s", gw.Wait(), tail(b, 4000))
		default:
		}
	}
	cpu, _ := proc.CPU(gw.PID())
	var g1, h1 float64
	var r1 int64
	fmt.Printf("waiting %s for the run's transactions to end...\n", transactionsEnd)
	time.Sleep(transactionsEnd)
	for deadline := time.Now().Add(settle); ; time.Sleep(time.Second) {
		if g1, h1, r1, err = stats(ctx, httpAddr, gw.PID()); err != nil {
			return err
		}
		if (g1 <= g0+5 && h1 <= h0+8<<20) || time.Now().After(deadline) {
			break
		}
	}
	// And once the runtime has been asked to return what it freed (gwchild's SIGUSR1): the
	// RSS above includes pages the runtime keeps until its scavenger's pace returns them.
	_ = syscall.Kill(gw.PID(), syscall.SIGUSR1)
	time.Sleep(time.Second)
	rGC, _ := proc.RSS(gw.PID())
	fmt.Printf("gateway: goroutines %v → %v, heap in use %.1f → %.1f MiB, RSS %.1f → %.1f MiB (%.1f MiB once freed memory is returned), CPU %.1f s\n",
		g0, g1, h0/(1<<20), h1/(1<<20), float64(r0)/(1<<20), float64(r1)/(1<<20), float64(rGC)/(1<<20), cpu.Seconds())
	if g1 > g0+5 || h1 > h0+8<<20 {
		failed = append(failed, "the gateway's goroutines or heap did not come back")
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	fmt.Println("sipfuzz: no crash, every well-formed request answered, nothing left behind")
	return nil
}

// stats reads the gateway's goroutines and heap in use from its metrics, and its RSS.
func stats(ctx context.Context, httpAddr string, pid int) (goroutines, heap float64, rss int64, err error) {
	m, err := gwchild.Metrics(ctx, httpAddr)
	if err != nil {
		return 0, 0, 0, err
	}
	rss, err = proc.RSS(pid)
	return m["go_goroutines"], m["go_memstats_heap_inuse_bytes"], rss, err
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
