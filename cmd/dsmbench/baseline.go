package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// baseResult is the raw Redis capacity measured in the same run: closed-loop store.Commit
// calls straight from this process, with no WebSocket and no gateway in between.
type baseResult struct {
	conc       int
	commits    int64
	perSec     float64
	lat        summary
	single     summary // one client alone: the unloaded round trip
	redisCPU   time.Duration
	toolCPU    time.Duration
	window     time.Duration
	redisKnown bool
}

// runBaseline runs conc goroutines, each committing the workload's op (one random field
// of one of two objects, 32-byte value, deduplicated by client and seq as the bridge
// does) in a closed loop, for d after a 1 s warmup; then one goroutine alone for 1 s.
// It runs before any gateway starts, so Redis serves nothing else.
func runBaseline(ctx context.Context, o options, redisAddr string, redisPID int) (baseResult, error) {
	r := baseResult{conc: o.baselineC}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: o.baselineC})
	defer rdb.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.New(store.Config{Shards: gateway.DefaultConfig().DSMShards}, rdb, log)
	if err != nil {
		return r, err
	}
	fields := fieldNames()
	t0 := time.Now()
	win := newWindow()
	lat := newHistogram()
	var count atomic.Int64
	var failed atomic.Value

	loop := func(i int, stop <-chan struct{}, h *histogram, inWin func(int64) bool) {
		key, _ := otbridge.NewClientKey()
		rng := rand.New(rand.NewPCG(uint64(o.seed), uint64(i)))
		objs := [2]string{
			fmt.Sprintf("bench/%s/raw/p/%d", o.run, i%o.d),
			fmt.Sprintf("bench/%s/raw/hot/%d", o.run, i/o.g),
		}
		for seq := int64(1); ; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			s := time.Now()
			ns := int64(s.Sub(t0))
			_, err := st.Commit(ctx, store.Commit{
				Obj: objs[rng.IntN(2)], Client: key, Seq: seq, Base: -1,
				Ops: []store.Op{store.Set(fields[rng.IntN(len(fields))], encodeValue(uint32(i), uint32(seq), ns))},
			})
			if err != nil {
				failed.Store(err)
				return
			}
			end := int64(time.Since(t0))
			if inWin(end) {
				count.Add(1)
				if inWin(ns) {
					h.record(time.Duration(end - ns))
				}
			}
		}
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < o.baselineC; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); loop(i, stop, lat, win.has) }()
	}
	sleepCtx(ctx, time.Second) // warmup: connections made, scripts loaded
	rc0, _ := procCPUIf(redisPID)
	self0 := proc.SelfCPU()
	win.open(int64(time.Since(t0)))
	sleepCtx(ctx, o.baseline)
	win.close(int64(time.Since(t0)))
	rc1, _ := procCPUIf(redisPID)
	self1 := proc.SelfCPU()
	close(stop)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return r, fmt.Errorf("baseline commit: %w", err)
	}
	r.window = win.length()
	r.commits = count.Load()
	r.perSec = float64(r.commits) / r.window.Seconds()
	r.lat = lat.summary()
	r.redisCPU, r.toolCPU, r.redisKnown = rc1-rc0, self1-self0, redisPID > 0

	// One client alone, for the unloaded commit round trip.
	single := newHistogram()
	w1 := newWindow()
	w1.open(int64(time.Since(t0)))
	stop1 := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); loop(o.baselineC, stop1, single, w1.has) }()
	sleepCtx(ctx, time.Second)
	close(stop1)
	<-done
	r.single = single.summary()
	return r, ctx.Err()
}

func procCPUIf(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	return proc.CPU(pid)
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
