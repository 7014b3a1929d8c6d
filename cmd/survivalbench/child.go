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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
)

// serveFlag, as the first argument, makes this binary a gateway instance (the hidden
// serve mode): the AS adapter and the media gateway, built by internal/gateway as
// cmd/gateway builds them, each instance a process of its own so that it can be killed.
const serveFlag = "-serve"

// benchSecret signs the media URLs (loopback only).
const benchSecret = "survivalbench-secret-0123456789abcdef"

// childOptions: the kernel kills the children if the benchmark dies without cleaning up.
func childOptions() proc.Options { return proc.Options{Pdeathsig: syscall.SIGKILL} }

// gw is one gateway instance the benchmark runs.
type gw struct {
	name  string
	child *proc.Child
	sip   string // its SIP address, host:port
}

// startGateway re-executes this binary in serve mode as instance name, with UDP ports
// [ports, ports+999] for its media, and returns once it printed READY.
func startGateway(ctx context.Context, dir, name, redisAddr string, ports int, lease time.Duration) (*gw, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}
	sipPort, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, serveFlag, "-redis", redisAddr, "-instance", name,
		"-sip", "127.0.0.1:"+strconv.Itoa(sipPort), "-ports", strconv.Itoa(ports), "-lease", lease.String())
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c, err := proc.Start(name, cmd, childOptions())
	if err != nil {
		return nil, err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- false
	}()
	// Building the gateway and its feed's first reads take milliseconds; 20 s covers a
	// machine busy with other work.
	select {
	case ok := <-ready:
		if !ok {
			c.Stop()
			return nil, fmt.Errorf("gateway %s ended before READY (log %s)", name, logf.Name())
		}
		return &gw{name: name, child: c, sip: "127.0.0.1:" + strconv.Itoa(sipPort)}, nil
	case <-time.After(20 * time.Second):
		c.Stop()
		return nil, fmt.Errorf("gateway %s not ready after 20 s", name)
	case <-ctx.Done():
		c.Stop()
		return nil, ctx.Err()
	}
}

// signal sends sig to the gateway's process.
func (g *gw) signal(sig syscall.Signal) error { return syscall.Kill(g.child.PID(), sig) }

// serveMain is the hidden serve mode: one gateway instance with the AS adapter and media
// gateway roles on loopback. It prints READY once its feed has read every shard, then
// serves until SIGTERM (a drain) or SIGINT.
func serveMain(args []string) error {
	fs := flag.NewFlagSet("survivalbench serve", flag.ContinueOnError)
	redisAddr := fs.String("redis", "", "Redis address")
	instance := fs.String("instance", "", "instance name")
	sipAddr := fs.String("sip", "", "SIP UDP listen address")
	ports := fs.Int("ports", 40000, "first UDP port of the media gateway")
	lease := fs.Duration("lease", time.Second, "call lease (SIP_CALL_LEASE)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	hard, stopHard := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stopHard()
	soft, stopSoft := signal.NotifyContext(hard, syscall.SIGTERM)
	defer stopSoft()

	// The media URL given to pages names the HTTP listener, so it is opened first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cfg := gateway.DefaultConfig()
	cfg.Roles = []string{gateway.RoleASAdapter, gateway.RoleMediaGW}
	cfg.Instance = *instance
	cfg.RedisAddrs = []string{*redisAddr}
	cfg.MGWSecret, cfg.UsersSecret = benchSecret, benchSecret
	cfg.MGWBindAddr, cfg.MGWPortMin, cfg.MGWPortMax = "127.0.0.1", *ports, *ports+999
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPListenUDP, cfg.SIPListenTCP = *sipAddr, ""
	cfg.SIPCallLease = *lease
	cfg.Drain = 2 * time.Second
	app, err := gateway.Build(hard, cfg, log, gateway.WithListener(l))
	if err != nil {
		return err
	}
	return app.RunReady(soft, hard, func() {
		fmt.Println("READY")
	})
}

// runServe is called from main when the first argument is serveFlag.
func runServe() {
	if err := serveMain(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "survivalbench serve:", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
	os.Exit(0)
}
