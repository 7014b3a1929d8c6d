package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter"
	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
	"dsmgw/store"
)

const benchSecret = "callbench-secret-0123456789"

func numCPU() int { return runtime.NumCPU() }

// children are the sipp processes this tool started, each in a temporary directory that
// holds its log; they are stopped by PID, Redis (redisrun) separately.
type children struct {
	group proc.Group
	dirs  []string
}

// start runs the installed binary name with args in a fresh directory, its output going
// to <name>.log there. The caller may Wait for a child that ends by itself.
func (c *children) start(name string, args ...string) (*proc.Child, string, error) {
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, "", fmt.Errorf("%s not installed: %w", name, err)
	}
	dir, err := os.MkdirTemp("", "callbench-"+name+"-")
	if err != nil {
		return nil, "", err
	}
	c.dirs = append(c.dirs, dir)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	p, err := c.group.Start(name, cmd, proc.Options{LogFile: filepath.Join(dir, name+".log")})
	if err != nil {
		return nil, "", err
	}
	return p, dir, nil
}

// stopAll stops every child still running, then removes their directories.
func (c *children) stopAll() {
	c.group.Stop(nil)
	for _, d := range c.dirs {
		_ = os.RemoveAll(d)
	}
}

// stack is Redis and one gateway process with the asadapter and mediagw roles, built by
// internal/gateway as cmd/gateway builds it, with a sipp UAS as the far end and a second
// feed as the browsers' view.
type stack struct {
	app     *gateway.App
	runDone chan error    // Run's result; nil until Run started
	st      *store.Store  // the gateway's: players are committed through its Redis pool
	watch   *store.Feed   // the subscriber's (a browser's view of the DSM)
	watched chan struct{} // closed when the subscriber's feed has stopped; nil until it runs
	uas     string
	rdb     *redis.Client      // the subscriber's
	drain   context.CancelFunc // ends Run's soft context: calls still up are hung up
	cancel  context.CancelFunc // ends everything
	redis   *redisrun.Server
	runID   string
}

func startStack(ctx context.Context, peers *children, o options, log *slog.Logger) (_ *stack, err error) {
	s := &stack{runID: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	ctx, s.cancel = context.WithCancel(ctx)
	var soft context.Context
	soft, s.drain = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.redis, err = redisrun.Start(ctx, redisrun.Options{NotifyKeyspaceEvents: "Khg"}); err != nil {
		return nil, err
	}

	// The far end: sipp's built-in UAS (180 then 200 at once).
	uport, err := proc.FreePort()
	if err != nil {
		return nil, err
	}
	cport, _ := proc.FreePort()
	mport, _ := proc.FreePort()
	if _, _, err := peers.start("sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", strconv.Itoa(uport),
		"-cp", strconv.Itoa(cport), "-mi", "127.0.0.1", "-mp", strconv.Itoa(mport&^1),
		"-buff_size", "4194304", "-nostdin"); err != nil {
		return nil, err
	}
	s.uas = "127.0.0.1:" + strconv.Itoa(uport)

	// The media URL given to browsers names the HTTP listener, so it is opened first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cfg := gateway.DefaultConfig()
	cfg.Roles = []string{gateway.RoleASAdapter, gateway.RoleMediaGW}
	cfg.Instance = "bench"
	cfg.RedisAddrs = []string{s.redis.Addr}
	// The load's writers commit through the gateway's store as well.
	cfg.RedisPool = 256
	cfg.MGWSecret, cfg.UsersSecret = benchSecret, benchSecret
	cfg.MGWBindAddr, cfg.MGWPortMin, cfg.MGWPortMax = "127.0.0.1", 20000, 39999
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPListenUDP, cfg.SIPListenTCP = "127.0.0.1:0", ""
	// The UAS is called directly, without a CSCF: trusted, it is not held to the bounds
	// of an untrusted source (its answers come at the load's rate).
	cfg.SIPTrustedPeers = []string{"127.0.0.1"}
	// A loopback UAS answers at once; a call not answered in 10 s has failed.
	cfg.SIPInviteTimeout = 10 * time.Second
	// The load hangs its calls up itself; the drain at the end only ends stragglers.
	cfg.Drain = 5 * time.Second
	if s.app, err = gateway.Build(ctx, cfg, log, gateway.WithListener(l),
		gateway.WithAdapterConfig(func(c *asadapter.Config) { c.Workers = o.workers })); err != nil {
		return nil, err
	}
	s.st = s.app.Store()
	s.runDone = make(chan error, 1)
	go func() { s.runDone <- s.app.Run(soft, ctx) }()

	s.rdb = redis.NewClient(&redis.Options{Addr: s.redis.Addr, PoolSize: 256})
	watchStore, err := store.New(store.Config{}, s.rdb, log)
	if err != nil {
		return nil, err
	}
	s.watch = store.NewFeed(store.FeedConfig{}, watchStore, log)
	s.watched = make(chan struct{})
	go func() { defer close(s.watched); _ = s.watch.Run(ctx) }()

	// Both feeds have read every shard once; a fresh machine takes milliseconds, 10 s
	// covers a loaded one.
	deadline := time.Now().Add(10 * time.Second)
	for s.app.Ready(ctx) != nil || !s.watch.Ready() {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("gateway not ready after 10 s: %v", s.app.Ready(ctx))
		}
		select {
		case err := <-s.runDone:
			s.runDone = nil
			return nil, fmt.Errorf("gateway ended: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	time.Sleep(500 * time.Millisecond) // the adapter's workers and listeners up
	return s, nil
}

// close drains and stops the gateway (waiting for Run to return), then stops the
// subscriber and Redis.
func (s *stack) close() {
	s.drain()
	switch {
	case s.runDone != nil:
		<-s.runDone
	case s.app != nil:
		s.app.Close()
	}
	s.cancel()
	if s.watched != nil {
		<-s.watched
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	if s.redis != nil {
		s.redis.Stop()
	}
}
