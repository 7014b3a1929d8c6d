package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter"
	"dsmgw/internal/redisrun"
	"dsmgw/store"
)

// bench is the running stack: Redis, the phone, two gateway instances.
type bench struct {
	o     options
	dir   string
	log   *slog.Logger
	redis *redisrun.Server
	rdb   *redis.Client
	st    *store.Store
	far   *farEnd
	gws   map[string]*gw
	made  int // gateways started (names and port ranges)
	calls int // calls placed (player names)
}

// framesNeeded is how many frames each end must receive before a fault and after the
// call moved: half a second of media, enough to see it flow.
const framesNeeded = 25

// callWait bounds each wait of a run (a call set up, a call moved, a hang-up): a
// failure deadline far above the lease, not a measurement.
const callWait = 30 * time.Second

func startBench(ctx context.Context, o options, log *slog.Logger) (_ *bench, err error) {
	b := &bench{o: o, log: log, gws: map[string]*gw{}}
	if b.dir, err = os.MkdirTemp("", "survivalbench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if b.redis, err = redisrun.Start(ctx, redisrun.Options{NotifyKeyspaceEvents: "Khgx", Proc: childOptions()}); err != nil {
		return nil, err
	}
	b.rdb = redis.NewClient(&redis.Options{Addr: b.redis.Addr})
	if b.st, err = store.New(store.Config{}, b.rdb, log); err != nil {
		return nil, err
	}
	if b.far, err = startFarEnd(ctx, log); err != nil {
		return nil, err
	}
	for len(b.gws) < 2 {
		if err := b.addGateway(ctx); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// addGateway starts one more gateway instance.
func (b *bench) addGateway(ctx context.Context) error {
	b.made++
	name := fmt.Sprintf("gw%d", b.made)
	g, err := startGateway(ctx, b.dir, name, b.redis.Addr, 30000+(b.made%30)*1000, b.o.lease)
	if err != nil {
		return err
	}
	b.gws[name] = g
	return nil
}

func (b *bench) close() {
	for _, g := range b.gws {
		_ = g.signal(syscall.SIGCONT)
		g.child.Stop()
	}
	if b.far != nil {
		b.far.close()
	}
	if b.rdb != nil {
		b.rdb.Close()
	}
	if b.redis != nil {
		b.redis.Stop()
	}
	if !b.o.keep && b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// once places a call, loses its instance with fault, and measures the call going on.
func (b *bench) once(ctx context.Context, fault string) (result, error) {
	var r result
	b.calls++
	p := newPage(b.st, b.calls)
	defer p.detach()
	if err := p.dial(ctx, b.far.uri); err != nil {
		return r, err
	}
	url, err := p.waitMedia(ctx, "", callWait)
	if err != nil {
		return r, fmt.Errorf("call setup: %w", err)
	}
	fl, err := p.fields(ctx)
	if err != nil {
		return r, err
	}
	p.callID = fl["call_id"]
	// A second and more of steady media before the fault: the baseline's window.
	if err := b.waitFrames(ctx, p, time.Now(), 60); err != nil {
		return r, fmt.Errorf("media before the fault: %w", err)
	}
	claim, err := b.rdb.Get(ctx, "asadapter:claim:"+p.player).Result()
	if err != nil {
		return r, fmt.Errorf("claim of the call: %w", err)
	}
	owner := b.gws[asadapter.ClaimInstance(claim)]
	if owner == nil {
		return r, fmt.Errorf("claim %q names no gateway of ours", claim)
	}

	t0 := time.Now()
	sig := syscall.SIGKILL
	if fault == "freeze" {
		sig = syscall.SIGSTOP
	}
	if err := owner.signal(sig); err != nil {
		return r, err
	}
	if fault == "kill" {
		delete(b.gws, owner.name)
		<-owner.child.Done()
	}
	_, err = p.waitMedia(ctx, url, callWait)
	r.moved = time.Since(t0)
	if fault == "freeze" {
		_ = owner.signal(syscall.SIGCONT)
	}
	if err != nil {
		return r, fmt.Errorf("after the %s: %w", fault, err)
	}
	if err := b.waitFrames(ctx, p, t0.Add(r.moved), framesNeeded); err != nil {
		return r, fmt.Errorf("media after the %s: %w", fault, err)
	}
	end := time.Now()
	r.pageGap = maxGap(p.frames(), t0.Add(-time.Second), end)
	r.farGap = maxGap(b.far.frames(p.callID), t0.Add(-time.Second), end)
	r.pageBaseline = maxGap(p.frames(), t0.Add(-time.Second), t0)
	r.farBaseline = maxGap(b.far.frames(p.callID), t0.Add(-time.Second), t0)

	byes := b.far.byeCount()
	if err := p.hangUp(ctx); err != nil {
		return r, err
	}
	if err := waitUntil(ctx, func() bool { return b.far.byeCount() > byes }); err != nil {
		return r, fmt.Errorf("no BYE after the hang-up: %w", err)
	}
	// A thawed instance has had the time of the hang-up to send anything it still meant
	// to; its fence keeps it silent.
	r.stale = b.far.requestsFrom(owner.sip, t0)
	if fault == "kill" {
		if err := b.addGateway(ctx); err != nil {
			return r, err
		}
	}
	return r, nil
}

// waitFrames waits until both ends of p's call received n frames after since.
func (b *bench) waitFrames(ctx context.Context, p *page, since time.Time, n int) error {
	err := waitUntil(ctx, func() bool {
		return after(p.frames(), since) >= n && after(b.far.frames(p.callID), since) >= n
	})
	if err != nil {
		return fmt.Errorf("page %d, phone %d frames, want %d each: %w", after(p.frames(), since),
			after(b.far.frames(p.callID), since), n, err)
	}
	return nil
}

// errTimeout is a wait of a run that ran out (callWait).
var errTimeout = errors.New("not within the wait")

// waitUntil polls cond every 20 ms for at most callWait.
func waitUntil(ctx context.Context, cond func() bool) error {
	deadline := time.Now().Add(callWait)
	for !cond() {
		if time.Now().After(deadline) {
			return errTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// after counts the arrivals after t.
func after(arrivals []time.Time, t time.Time) int {
	n := 0
	for _, a := range arrivals {
		if a.After(t) {
			n++
		}
	}
	return n
}
