package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
	"dsmgw/store"
)

// serveFlag, as the first argument, makes this binary the gateway (the hidden serve mode).
// The parent passes the secrets in secretEnv so they never show in ps.
const (
	serveFlag = "-serve"
	secretEnv = "DSMSOAK_SECRET"
)

// childOptions start the children so that the kernel kills them if dsmsoak dies without
// cleaning up.
func childOptions() proc.Options { return proc.Options{Pdeathsig: syscall.SIGKILL} }

// startGateway re-executes this binary in serve mode and returns its HTTP base URL once it
// printed READY.
func startGateway(ctx context.Context, o options, dir, redisAddr, secret string) (*proc.Child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("own executable: %w", err)
	}
	sweep := time.Duration(0)
	if o.keep {
		sweep = time.Second
	}
	cmd := exec.Command(exe, serveFlag, "-redis", redisAddr, "-grace", o.grace.String(), "-feed-age", o.feedAge.String(),
		"-sweep", sweep.String())
	cmd.Env = append(os.Environ(), secretEnv+"="+secret)
	logf, err := os.Create(dir + "/gateway.log")
	if err != nil {
		return nil, "", err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	c, err := proc.Start("gateway", cmd, childOptions())
	if err != nil {
		return nil, "", err
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		base := ""
		for sc.Scan() {
			if l := sc.Text(); l == "READY" {
				got <- base
				_, _ = io.Copy(io.Discard, out)
				return
			} else {
				base = l
			}
		}
		close(got)
	}()
	select {
	case base, ok := <-got:
		if !ok {
			c.Stop()
			return nil, "", fmt.Errorf("gateway ended before READY (see %s/gateway.log)", dir)
		}
		return c, base, nil
	case <-time.After(30 * time.Second): // a build and a first feed read take milliseconds
		c.Stop()
		return nil, "", fmt.Errorf("gateway not ready after 30 s")
	case <-ctx.Done():
		c.Stop()
		return nil, "", ctx.Err()
	}
}

// serveMain is the hidden serve mode: one gateway with the bridge, asadapter and mediagw
// roles, built by internal/gateway from its defaults as cmd/gateway builds it, on loopback,
// with the grace period and feed age of the run. It prints its base URL and READY, then
// serves until SIGTERM. On SIGUSR1 it returns freed memory to the OS (for the parent's
// RSS readings).
func serveMain(args []string) error {
	fs := flag.NewFlagSet("dsmsoak serve", flag.ContinueOnError)
	redisAddr := fs.String("redis", "", "Redis address")
	grace := fs.Duration("grace", 5*time.Second, "DSM_GRACE")
	feedAge := fs.Duration("feed-age", 10*time.Second, "DSM_FEED_MAX_AGE")
	// With -keep the grace period is a year, but the feeds must still be trimmed by age
	// (they are not what the sessions leave): the janitor then sweeps every second.
	sweep := fs.Duration("sweep", 0, "janitor interval (0: the gateway's, a grace period's eighth)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := proc.RaiseNoFile(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	soft, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	// DSMSOAK_HEAPPROFILE=<dir> writes a heap profile at every reading (heap-1.pprof is
	// the baseline's, the last the final one), to compare with go tool pprof -diff_base.
	profDir := os.Getenv("DSMSOAK_HEAPPROFILE")
	go func() {
		n := 0
		for range usr1 {
			debug.FreeOSMemory()
			if profDir == "" {
				continue
			}
			n++
			if f, err := os.Create(fmt.Sprintf("%s/heap-%d.pprof", profDir, n)); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}()
	// The media URL names the HTTP listener, so it is opened first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	secret := os.Getenv(secretEnv)
	cfg := gateway.DefaultConfig()
	cfg.Roles = []string{gateway.RoleBridge, gateway.RoleASAdapter, gateway.RoleMediaGW}
	cfg.Instance = "soak"
	cfg.RedisAddrs = []string{*redisAddr}
	cfg.DSMSecret, cfg.MGWSecret, cfg.UsersSecret = secret, secret, secret
	cfg.DSMGrace, cfg.DSMFeedMaxAge = *grace, *feedAge
	cfg.MGWBindAddr, cfg.MGWPortMin, cfg.MGWPortMax = "127.0.0.1", 20000, 39999
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPListenUDP, cfg.SIPListenTCP = "127.0.0.1:0", ""
	cfg.SIPInviteTimeout = 10 * time.Second // a loopback UAS answers at once
	// The sipp UAS is called directly, without a CSCF: it is the trust domain here, or
	// its answers (dozens a second) would pay the SIP edge's per-source bounds.
	cfg.SIPTrustedPeers = []string{"127.0.0.1"}
	// The soak measures memory, not takeovers: with the 1 s default, a machine loaded by
	// the soak (and by tests beside it) delays renewals enough that the single instance
	// fences its own calls (docs/call-survival.md), and calls set up then fail.
	cfg.SIPCallLease = 10 * time.Second
	cfg.Drain = 5 * time.Second
	hard := context.Background()
	app, err := gateway.Build(hard, cfg, log, gateway.WithListener(l),
		gateway.WithJanitorConfig(func(c *store.JanitorConfig) { c.Interval = *sweep }))
	if err != nil {
		return err
	}
	return app.RunReady(soft, hard, func() {
		time.Sleep(300 * time.Millisecond) // the adapter's workers and listeners up
		fmt.Println("http://" + app.Addr().String())
		fmt.Println("READY")
	})
}

// runServe is called from main when the first argument is serveFlag.
func runServe() {
	if err := serveMain(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "dsmsoak serve:", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
	os.Exit(0)
}
