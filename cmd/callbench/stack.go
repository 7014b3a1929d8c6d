package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
	"dsmgw/mediagw"
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

// stack is Redis, the DSM store, the media gateway and one AS adapter, with a sipp UAS
// as the far end and a second feed as the browsers' view.
type stack struct {
	st      *store.Store
	feed    *store.Feed // the adapter's
	watch   *store.Feed // the subscriber's (a browser's view of the DSM)
	ad      *asadapter.Adapter
	uas     string
	rdbs    []*redis.Client
	cancel  context.CancelFunc
	httpSrv *http.Server
	redis   *redisrun.Server
	runID   string
}

func startStack(ctx context.Context, peers *children, o options, log *slog.Logger) (_ *stack, err error) {
	rs, err := redisrun.Start(ctx, redisrun.Options{NotifyKeyspaceEvents: "Khg"})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			rs.Stop()
		}
	}()
	raddr := rs.Addr
	s := &stack{redis: rs, runID: strconv.FormatInt(time.Now().UnixNano()%1e9, 36)}
	ctx, s.cancel = context.WithCancel(ctx)
	newClient := func() *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: raddr, PoolSize: 256})
		s.rdbs = append(s.rdbs, c)
		return c
	}
	if s.st, err = store.New(store.Config{}, newClient(), log); err != nil {
		return nil, err
	}
	s.feed = store.NewFeed(store.FeedConfig{}, s.st, log)
	watchStore, err := store.New(store.Config{}, newClient(), log)
	if err != nil {
		return nil, err
	}
	s.watch = store.NewFeed(store.FeedConfig{}, watchStore, log)
	go func() { _ = s.feed.Run(ctx) }()
	go func() { _ = s.watch.Run(ctx) }()

	// Media gateway in process, API over loopback HTTP as in production.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + l.Addr().String()
	gw, err := mediagw.New(mediagw.Config{BindAddr: "127.0.0.1", PortMin: 20000, PortMax: 39999,
		PublicWSURL: "ws://" + l.Addr().String(), Secret: benchSecret}, prometheus.NewRegistry(), log)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw.APIHandler())
	mux.Handle("/media/", gw.MediaHandler())
	s.httpSrv = &http.Server{Handler: mux}
	go func() { _ = s.httpSrv.Serve(l) }()
	go func() { _ = gw.Run(ctx) }()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	mc, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: base, Secret: benchSecret, HTTPClient: hc})
	if err != nil {
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

	s.ad, err = asadapter.New(asadapter.Config{Instance: "bench", ListenUDP: "127.0.0.1:0",
		InviteTimeout: 10 * time.Second, Workers: o.workers},
		s.st, s.feed, asadapter.NewMediaGatewayClient(mc, "bench", ""), prometheus.NewRegistry(), log)
	if err != nil {
		return nil, err
	}
	go func() { _ = s.ad.Run(ctx) }()
	time.Sleep(500 * time.Millisecond) // feeds and listeners up; the first XREADs are issued
	return s, nil
}

func (s *stack) close() {
	s.cancel()
	_ = s.httpSrv.Close()
	for _, c := range s.rdbs {
		_ = c.Close()
	}
	s.redis.Stop()
}
