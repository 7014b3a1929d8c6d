package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
	"dsmgw/otbridge"
)

// serveFlag, as the first argument, makes this binary a gateway instance (the hidden serve
// mode). The parent passes the token secret in secretEnv so it never shows in ps.
const (
	serveFlag = "-serve"
	secretEnv = "DSMBENCH_SECRET"
)

// childOptions start dsmbench's children (redis-server, gateway instances) so that the
// kernel kills them if dsmbench dies without cleaning up; they get proc.DefaultGrace to
// stop (a gateway drains its connections first, which takes far less on loopback).
func childOptions() proc.Options { return proc.Options{Pdeathsig: syscall.SIGKILL} }

// startRedis runs a private redis-server without persistence on a free loopback port,
// its files and log (whose start-up banner would drown the report) in the run's directory.
func startRedis(ctx context.Context, dir string) (*redisrun.Server, error) {
	return redisrun.Start(ctx, redisrun.Options{
		// 10,000 clients do not talk to Redis, but leave room for many gateway pools.
		MaxClients: 10000,
		Dir:        dir,
		Proc:       childOptions(),
	})
}

// startGateway re-executes this binary in serve mode and returns its WebSocket URL once
// it printed READY (its feed readers run and the bridge accepts connections).
func startGateway(ctx context.Context, i int, dir, redisAddr, secret string, keyspace bool) (*proc.Child, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("own executable: %w", err)
	}
	cmd := exec.Command(exe, serveFlag, "-redis", redisAddr, "-instance", "bench-gw"+strconv.Itoa(i),
		"-keyspace="+strconv.FormatBool(keyspace))
	cmd.Env = append(os.Environ(), secretEnv+"="+secret)
	// Its warnings go to a file the report summarises: under overload a gateway can log
	// thousands of lines, which must neither drown the report nor block the gateway.
	logf, err := os.Create(gatewayLog(dir, i))
	if err != nil {
		return nil, "", err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	c, err := proc.Start("gateway "+strconv.Itoa(i), cmd, childOptions())
	if err != nil {
		return nil, "", err
	}
	type head struct {
		url string
		err error
	}
	got := make(chan head, 1)
	go func() {
		sc := bufio.NewScanner(out)
		var url string
		for sc.Scan() {
			l := sc.Text()
			if l == "READY" {
				got <- head{url: url}
				_, _ = io.Copy(io.Discard, out)
				return
			}
			url = l
		}
		got <- head{err: fmt.Errorf("gateway %d ended before READY", i)}
	}()
	// Building the bridge and the first XREAD of every shard take milliseconds; 20 s
	// covers a machine busy with other work.
	select {
	case h := <-got:
		if h.err != nil {
			c.Stop()
			return nil, "", h.err
		}
		return c, h.url, nil
	case <-time.After(20 * time.Second):
		c.Stop()
		return nil, "", fmt.Errorf("gateway %d not ready after 20 s", i)
	case <-ctx.Done():
		c.Stop()
		return nil, "", ctx.Err()
	}
}

// serveMain is the hidden serve mode: one gateway instance with the bridge role, built by
// internal/gateway from its defaults as cmd/gateway builds it, except that the policy is
// otbridge.AllowAll (load clients share objects under bench/) and the per-connection op
// rate is raised. It prints its WebSocket URL and READY, then serves until SIGTERM. On
// SIGUSR1 it returns freed memory to the OS (the parent's "after GC" RSS reading).
func serveMain(args []string) error {
	fs := flag.NewFlagSet("dsmbench serve", flag.ContinueOnError)
	redisAddr := fs.String("redis", "", "Redis address")
	instance := fs.String("instance", "", "instance name")
	keyspace := fs.Bool("keyspace", true, "enable keyspace notifications, as the gateway does by default")
	// A closed-loop client does thousands of ops per second; the production limit (200/s)
	// exists to protect Redis from one page, not to shape a load test.
	opsPerSec := fs.Float64("ops-per-second", 1e6, "per-connection op rate limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := proc.RaiseNoFile(); err != nil {
		return err
	}
	// DSMBENCH_CPUPROFILE=<file> profiles the gateway instance for its whole life, to see
	// where a gateway's CPU per op goes.
	if path := os.Getenv("DSMBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path + "." + *instance)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	soft, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			debug.FreeOSMemory()
		}
	}()

	cfg := gateway.DefaultConfig()
	cfg.Roles = []string{gateway.RoleBridge}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.RedisAddrs = []string{*redisAddr}
	cfg.DSMSecret = os.Getenv(secretEnv)
	cfg.DSMOpsPerSecond = *opsPerSec
	cfg.DSMNoKeyspace = !*keyspace
	// The parent stops its gateways after the run: 2 s closes loopback connections.
	cfg.Drain = 2 * time.Second
	if *instance != "" {
		cfg.Instance = *instance
	}
	// SIGTERM and SIGINT both drain (soft, within cfg.Drain): the parent stops its
	// gateways so after a run, and has nothing to hurry.
	hard := context.Background()
	app, err := gateway.Build(hard, cfg, log,
		gateway.WithBridgeConfig(func(c *otbridge.Config) { c.Policy = otbridge.AllowAll{} }))
	if err != nil {
		return err
	}
	return app.RunReady(soft, hard, func() {
		fmt.Println("ws://" + app.Addr().String() + "/dsm")
		fmt.Println("READY")
	})
}

// runServe is called from main and TestMain when the first argument is serveFlag.
func runServe() {
	if err := serveMain(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "dsmbench serve:", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
	os.Exit(0)
}

func gatewayLog(dir string, i int) string {
	return filepath.Join(dir, "gateway-"+strconv.Itoa(i)+".log")
}

// logSummary returns the number of lines a gateway logged and its first few.
func logSummary(path string, keep int) (int, []string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return 0, nil
	}
	return len(lines), lines[:min(keep, len(lines))]
}
