package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
	"dsmgw/store"
)

// result is everything one run measured.
type result struct {
	o                     options
	noFile                uint64
	loadBefore, loadAfter string
	base                  *baseResult
	conn                  connectStats
	gwPIDs                []int
	redisPID              int
	rssBefore, rssIdle    int64
	rssIdleGC, rssLoad    int64
	window                time.Duration
	ackedInWin            int64
	ackedPerSec           float64
	ack, recv             summary
	loss                  lossCount
	gwCPU, redisCPU       time.Duration
	toolCPU               time.Duration
	codes                 map[string]int64
	dupRecv, foreign      int64
	doErrs                int64
	gwLogLines            int      // warnings and errors the gateways logged
	gwLogFirst            []string // the first few of them
}

func (o options) progress(format string, args ...any) {
	if !o.quiet {
		fmt.Fprintf(os.Stderr, "dsmbench: "+format+"\n", args...)
	}
}

// run performs one benchmark run and prints its report to o.out.
func run(ctx context.Context, o options) (*result, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	res := &result{o: o, loadBefore: loadAvg()}
	var err error
	if res.noFile, err = proc.RaiseNoFile(); err != nil {
		return nil, err
	}
	if need := uint64(o.c) + 256; res.noFile < need {
		return nil, fmt.Errorf("RLIMIT_NOFILE %d is below the %d descriptors %d clients need", res.noFile, need, o.c)
	}
	dir, err := os.MkdirTemp("", "dsmbench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	redisAddr, redisPID := o.redis, o.redisPID
	if redisAddr == "" {
		rs, err := startRedis(ctx, dir)
		if err != nil {
			return nil, err
		}
		defer rs.Stop()
		redisAddr, redisPID = rs.Addr, rs.PID()
	}
	// Deferred after Redis: the gateways stop first.
	var gateways proc.Group
	defer gateways.Stop(nil)
	res.redisPID = redisPID

	if o.baseline > 0 {
		o.progress("raw baseline: %d goroutines committing for %s", o.baselineC, o.baseline)
		b, err := runBaseline(ctx, o, redisAddr, redisPID)
		if err != nil {
			return nil, err
		}
		res.base = &b
	}

	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	var urls []string
	for i := 0; i < o.gateways; i++ {
		c, url, err := startGateway(ctx, i, dir, redisAddr, string(hexBytes(secret)), o.keyspace)
		if err != nil {
			return nil, err
		}
		gateways.Add(c)
		urls = append(urls, url)
		res.gwPIDs = append(res.gwPIDs, c.PID())
	}
	if err := preload(ctx, o, redisAddr); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 500*time.Millisecond) // let the fresh gateways settle before the first RSS reading
	if res.rssBefore, err = proc.SumRSS(res.gwPIDs); err != nil {
		return nil, err
	}

	b := newBench(o)
	b.secret = hexBytes(secret)
	defer b.closeAll()
	o.progress("connecting %d clients to %d gateway(s) at %g/s, %d at a time", o.c, o.gateways, o.dialRate, o.dialConc)
	if res.conn, err = b.connect(ctx, urls); err != nil {
		return nil, fmt.Errorf("connect phase: %w", err)
	}
	o.progress("connected in %s; idle for %s", res.conn.took.Round(time.Millisecond), o.settle)
	sleepCtx(ctx, o.settle)
	if res.rssIdle, err = proc.SumRSS(res.gwPIDs); err != nil {
		return nil, err
	}
	for _, p := range res.gwPIDs {
		_ = syscall.Kill(p, syscall.SIGUSR1) // debug.FreeOSMemory in the gateway
	}
	sleepCtx(ctx, time.Second)
	if res.rssIdleGC, err = proc.SumRSS(res.gwPIDs); err != nil {
		return nil, err
	}

	o.progress("%s loop load: warmup %s, window %s", o.mode, o.warmup, o.duration)
	var gw0, rc0, self0 time.Duration
	err = b.load(ctx, func() error {
		var err error
		if gw0, err = proc.SumCPU(res.gwPIDs); err != nil {
			return err
		}
		rc0, _ = procCPUIf(redisPID)
		self0 = proc.SelfCPU()
		return nil
	}, func() {
		gw1, _ := proc.SumCPU(res.gwPIDs)
		rc1, _ := procCPUIf(redisPID)
		res.gwCPU, res.redisCPU, res.toolCPU = gw1-gw0, rc1-rc0, proc.SelfCPU()-self0
		res.rssLoad, _ = proc.SumRSS(res.gwPIDs)
	})
	if err != nil {
		return nil, err
	}
	o.progress("draining for at most %s", o.drain)
	res.loss = b.drain(ctx, o.drain)

	st := b.st
	res.window = st.win.length()
	res.ackedInWin = st.ackedInWin.Load()
	res.ackedPerSec = float64(res.ackedInWin) / res.window.Seconds()
	res.ack, res.recv = st.ackLat.summary(), st.recvLat.summary()
	st.mu.Lock()
	res.codes = st.codes
	st.mu.Unlock()
	res.dupRecv, res.foreign, res.doErrs = st.dupRecv.Load(), st.foreign.Load(), st.doErrs.Load()
	res.loadAfter = loadAvg()
	for i := range res.gwPIDs {
		n, first := logSummary(gatewayLog(dir, i), 3)
		res.gwLogLines += n
		res.gwLogFirst = append(res.gwLogFirst, first...)
	}
	report(o.out, res)
	return res, nil
}

func hexBytes(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return out
}

// preload gives every player and hot object its 8 fields before any client subscribes, so
// clients start from full objects as pages do.
func preload(ctx context.Context, o options, redisAddr string) error {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 32})
	defer rdb.Close()
	st, err := store.New(store.Config{Shards: gateway.DefaultConfig().DSMShards}, rdb, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	var objs []string
	for j := 0; j < min(o.d, o.c); j++ {
		objs = append(objs, fmt.Sprintf("bench/%s/p/%d", o.run, j))
	}
	for g := 0; g*o.g < o.c; g++ {
		objs = append(objs, fmt.Sprintf("bench/%s/hot/%d", o.run, g))
	}
	init := strings.Repeat("-", valueLen)
	var ops []store.Op
	for _, f := range fieldNames() {
		ops = append(ops, store.Set(f, init))
	}
	jobs := make(chan string)
	errc := make(chan error, 32)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for obj := range jobs {
				if _, err := st.Commit(ctx, store.Commit{Obj: obj, Base: -1, Ops: ops}); err != nil {
					select {
					case errc <- fmt.Errorf("preload %s: %w", obj, err):
					default:
					}
				}
			}
		}()
	}
	for _, obj := range objs {
		jobs <- obj
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// loadAvg returns the machine's 1, 5 and 15 minute load averages for the report, or ""
// if /proc/loadavg cannot be read (the report then shows nothing there).
func loadAvg() string {
	la, err := proc.LoadAvg()
	if err != nil {
		return ""
	}
	return strings.Join(la[:], " ")
}
