package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// fieldNames are the 8 fields of a benchmark player object: the first eight player fields
// of the shared schema, so the objects look like the real ones.
func fieldNames() []string {
	f := store.Schema{}.Players.Fields
	if sc, err := store.LoadSchema(); err == nil {
		f = sc.Players.Fields
	}
	names := []string{f.Service, f.Remote, f.Conference, f.Encoding, f.PlayerState, f.MgwState, f.MgwURL, f.Progress}
	for i, n := range names {
		if n == "" {
			names[i] = fmt.Sprintf("f%d", i)
		}
	}
	return names
}

// benchClient is one load client: a dsmclient connection subscribed to its player object
// (objs[0]) and its group's hot object (objs[1]).
type benchClient struct {
	idx    int
	cl     *dsmclient.Client
	objs   [2]*dsmclient.Object
	expect [2]int32 // other subscribers of each object
	recs   recTable
	done   chan struct{} // closed loop: the op in flight was answered (cap 1)
	dials  atomic.Int32  // connects, including reconnects (TokenFunc calls)
}

// loadStats are filled by the client hooks during a run.
type loadStats struct {
	win              *window
	ackLat, recvLat  *histogram
	ackedInWin       atomic.Int64
	submitted        atomic.Int64
	acked, nacked    atomic.Int64
	wantRecv, gotRec atomic.Int64 // receipts owed by ops not nacked; counted (at most expect per op)
	dupRecv, foreign atomic.Int64
	doErrs           atomic.Int64

	mu    sync.Mutex // guards codes
	codes map[string]int64
}

func (s *loadStats) code(c string) {
	s.mu.Lock()
	s.codes[c]++
	s.mu.Unlock()
}

// bench is one benchmark run's client side.
type bench struct {
	o       options
	t0      time.Time // the zero of every ns timestamp in op values
	fields  []string
	clients []*benchClient
	st      *loadStats
	log     *slog.Logger
	// secret signs a token of its own for every client (the gateways dsmbench starts);
	// sessions, when set instead, are one GET /session per group of G clients from
	// running gateways (-target), whose production grants give each session its own
	// players/<client>/... objects only.
	secret   []byte
	sessions []otbridge.Session
}

func newBench(o options) *bench {
	return &bench{
		o: o, t0: time.Now(), fields: fieldNames(),
		st:  &loadStats{win: newWindow(), ackLat: newHistogram(), recvLat: newHistogram(), codes: map[string]int64{}},
		log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

func (b *bench) now() int64 { return int64(time.Since(b.t0)) }

// playerObj and hotObj name the objects of the workload. Against running gateways they
// lie under the group's session, players/<client>/bench/..., which the production grants
// allow and the AS adapter leaves alone (a player object has one segment after the client).
func (b *bench) playerObj(i int) string {
	if b.sessions != nil {
		return fmt.Sprintf("players/%s/bench/p%d", b.sessions[i/b.o.g].Client, i%b.o.d)
	}
	return fmt.Sprintf("bench/%s/p/%d", b.o.run, i%b.o.d)
}

func (b *bench) hotObj(i int) string {
	if b.sessions != nil {
		return fmt.Sprintf("players/%s/bench/hot", b.sessions[i/b.o.g].Client)
	}
	return fmt.Sprintf("bench/%s/hot/%d", b.o.run, i/b.o.g)
}

// token returns client i's token: its group's session's, or one signed here.
func (b *bench) token(i int) (string, error) {
	if b.sessions != nil {
		return b.sessions[i/b.o.g].Token, nil
	}
	key, err := otbridge.NewClientKey()
	if err != nil {
		return "", err
	}
	return otbridge.SignToken(b.secret, otbridge.Claims{Client: key, Exp: time.Now().Add(24 * time.Hour).Unix()}), nil
}

// subscribers returns how many clients subscribe to client i's player and hot objects.
func (b *bench) subscribers(i int) [2]int32 {
	c, d, g := b.o.c, b.o.d, b.o.g
	p := c / d
	if i%d < c%d {
		p++
	}
	h := g
	if last := c - (i/g)*g; last < g {
		h = last
	}
	return [2]int32{int32(p), int32(h)}
}

// hooks returns the dsmclient hooks of client bc. They run on its reader goroutine.
func (b *bench) hooks(bc *benchClient, cfg *dsmclient.Config) {
	st := b.st
	cfg.OnAck = func(a dsmclient.Ack) {
		at := int64(a.At.Sub(b.t0))
		for _, op := range a.Ops {
			if op.Value == nil {
				continue
			}
			idx, seq, ns, ok := decodeValue(*op.Value)
			if !ok || int(idx) != bc.idx {
				st.foreign.Add(1)
				continue
			}
			r := bc.recs.get(seq)
			if r == nil || !r.acked.CompareAndSwap(false, true) {
				continue
			}
			st.acked.Add(1)
			if st.win.has(at) {
				st.ackedInWin.Add(1)
			}
			if st.win.has(ns) {
				st.ackLat.record(time.Duration(at - ns))
			}
		}
		wake(bc.done)
	}
	cfg.OnNack = func(n dsmclient.Nack) {
		st.code("nack:" + n.Code)
		for _, op := range n.Ops {
			if op.Value == nil {
				continue
			}
			if _, seq, _, ok := decodeValue(*op.Value); ok {
				if r := bc.recs.get(seq); r != nil && r.nacked.CompareAndSwap(false, true) {
					st.nacked.Add(1)
					st.wantRecv.Add(-int64(r.expect))
				}
			}
		}
		wake(bc.done)
	}
	cfg.OnRemote = func(rm dsmclient.Remote) {
		at := int64(rm.At.Sub(b.t0))
		for _, op := range rm.Ops {
			if op.Value == nil {
				continue
			}
			idx, seq, ns, ok := decodeValue(*op.Value)
			if !ok || int(idx) >= len(b.clients) || int(idx) == bc.idx {
				st.foreign.Add(1)
				continue
			}
			r := b.clients[idx].recs.get(seq)
			if r == nil {
				st.foreign.Add(1)
				continue
			}
			if n := r.recv.Add(1); n > r.expect {
				st.dupRecv.Add(1)
				continue
			}
			st.gotRec.Add(1)
			if st.win.has(ns) {
				st.recvLat.record(time.Duration(at - ns))
			}
		}
	}
	cfg.OnError = func(code, _, _ string) { st.code("error:" + code) }
}

func wake(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// submit sends one op: one random field of one of the client's two objects (chosen at
// random; against running gateways, see below) set to a fresh 32-byte value.
func (b *bench) submit(bc *benchClient, rng *rand.Rand) {
	which := rng.IntN(2)
	if b.sessions != nil && bc.idx%b.o.g != 0 {
		// A client key is one writer per object (its ops are numbered per object and
		// deduplicated by key and number), and the clients of a group share one key: only
		// the group's first client writes the hot object, the others read it.
		which = 0
	}
	field := b.fields[rng.IntN(len(b.fields))]
	ns := b.now()
	_, seq := bc.recs.add(bc.expect[which])
	b.st.submitted.Add(1)
	b.st.wantRecv.Add(int64(bc.expect[which]))
	if err := bc.objs[which].Do(store.Set(field, encodeValue(uint32(bc.idx), seq, ns))); err != nil {
		b.st.doErrs.Add(1)
	}
}

// closedLoop keeps one op outstanding: the next op is submitted when the previous one was
// acknowledged (or refused).
func (b *bench) closedLoop(bc *benchClient, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(b.o.seed), uint64(bc.idx)))
	for {
		select {
		case <-stop:
			return
		default:
		}
		b.submit(bc, rng)
		select {
		case <-bc.done:
		case <-stop:
			return
		}
	}
}

// openLoop submits at rate ops/s on a schedule fixed in advance (Poisson arrivals, or
// evenly spaced with a random phase), whether or not earlier ops were answered: a slow
// gateway shows up as latency, not as a lower offered load.
func (b *bench) openLoop(bc *benchClient, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(b.o.seed), uint64(bc.idx)))
	mean := float64(time.Second) / b.o.rate
	gap := func() time.Duration {
		if b.o.arrival == "uniform" {
			return time.Duration(mean)
		}
		return time.Duration(rng.ExpFloat64() * mean)
	}
	start := time.Now()
	next := time.Duration(rng.Float64() * mean) // random phase (also for Poisson: desynchronises the start)
	t := time.NewTimer(time.Until(start.Add(next)))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.submit(bc, rng)
		next += gap()
		t.Reset(time.Until(start.Add(next)))
	}
}

// load runs every client's loop for the warmup and the measured window, calling before
// as the window opens and after as it closes (CPU readings), then stops the loops.
func (b *bench) load(ctx context.Context, before func() error, after func()) error {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, bc := range b.clients {
		wg.Go(func() {
			if b.o.mode == "open" {
				b.openLoop(bc, stop)
			} else {
				b.closedLoop(bc, stop)
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	sleepCtx(ctx, b.o.warmup)
	if err := before(); err != nil {
		return err
	}
	b.st.win.open(b.now())
	sleepCtx(ctx, b.o.duration)
	b.st.win.close(b.now())
	after()
	return ctx.Err()
}

// connectStats describe the connect phase.
type connectStats struct {
	took            time.Duration
	dialLat, subLat *histogram
	retries         int64
}

// connect dials every client (round-robin over urls) at a bounded rate and concurrency,
// so the gateways' accept queues are never overrun, and subscribes each to its two
// objects.
func (b *bench) connect(ctx context.Context, urls []string) (connectStats, error) {
	cs := connectStats{dialLat: newHistogram(), subLat: newHistogram()}
	b.clients = make([]*benchClient, b.o.c)
	for i := range b.clients {
		bc := &benchClient{idx: i, done: make(chan struct{}, 1)}
		bc.expect = b.subscribers(i)
		bc.expect[0]--
		bc.expect[1]--
		b.clients[i] = bc
	}
	dialer := &websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		// Small buffers: 10,000 clients in this process; frames are a few hundred bytes.
		ReadBufferSize: 1024, WriteBufferSize: 1024,
	}
	jobs := make(chan int)
	var retries atomic.Int64
	errc := make(chan error, b.o.dialConc)
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < b.o.dialConc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := b.connectOne(cctx, b.clients[i], urls[i%len(urls)], dialer, &cs, &retries); err != nil {
					select {
					case errc <- err:
					default:
					}
					cancel()
					return
				}
			}
		}()
	}
	t0 := time.Now()
	tick := time.NewTicker(time.Duration(float64(time.Second) / b.o.dialRate))
feed:
	for i := range b.clients {
		select {
		case <-cctx.Done():
			break feed
		case <-tick.C:
		}
		select {
		case jobs <- i:
		case <-cctx.Done():
			break feed
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	cs.took = time.Since(t0)
	cs.retries = retries.Load()
	select {
	case err := <-errc:
		return cs, err
	default:
	}
	if err := ctx.Err(); err != nil {
		return cs, err
	}
	return cs, nil
}

// dialAttempts bounds the retries of one client's connect: a refused dial under a burst is
// retried, a gateway that keeps refusing ends the run.
const dialAttempts = 5

func (b *bench) connectOne(ctx context.Context, bc *benchClient, url string,
	dialer *websocket.Dialer, cs *connectStats, retries *atomic.Int64) error {
	tok, err := b.token(bc.idx)
	if err != nil {
		return err
	}
	cfg := dsmclient.Config{
		URL: url, Dialer: dialer, Log: b.log,
		TokenFunc: func(context.Context) (string, error) { bc.dials.Add(1); return tok, nil },
	}
	b.hooks(bc, &cfg)
	var last error
	for a := 0; a < dialAttempts; a++ {
		if a > 0 {
			retries.Add(1)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(a) * 200 * time.Millisecond):
			}
		}
		// 15 s: a dial that has not completed by then on loopback is refused, not slow.
		dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		t := time.Now()
		cl, err := dsmclient.Dial(dctx, cfg)
		cancel()
		if err != nil {
			last = err
			continue
		}
		cs.dialLat.record(time.Since(t))
		bc.cl = cl
		break
	}
	if bc.cl == nil {
		return fmt.Errorf("client %d: %w", bc.idx, last)
	}
	t := time.Now()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for k, obj := range []string{b.playerObj(bc.idx), b.hotObj(bc.idx)} {
		o, err := bc.cl.Subscribe(sctx, obj)
		if err != nil {
			return fmt.Errorf("client %d: %w", bc.idx, err)
		}
		bc.objs[k] = o
	}
	cs.subLat.record(time.Since(t))
	return nil
}

// closeAll closes every client, 64 at a time (each close waits for its reader to end).
func (b *bench) closeAll() {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, bc := range b.clients {
		if bc == nil || bc.cl == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			_ = bc.cl.Close()
		}()
	}
	wg.Wait()
}

// lossCount is the outcome after the drain.
type lossCount struct {
	submitted, acked, nacked int64
	neverAcked               int64 // not acked and not nacked
	notReceived              int64 // ops (not nacked) some other subscriber never received
	missingReceipts          int64
	reconnects               int64
}

// drain waits until every op was answered and received by every other subscriber, or the
// drain period ends; then it counts what is missing.
func (b *bench) drain(ctx context.Context, d time.Duration) lossCount {
	st := b.st
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if st.acked.Load()+st.nacked.Load() >= st.submitted.Load() && st.gotRec.Load() >= st.wantRecv.Load() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var l lossCount
	for _, bc := range b.clients {
		if bc == nil {
			continue
		}
		if n := bc.dials.Load(); n > 1 {
			l.reconnects += int64(n - 1)
		}
		bc.recs.each(func(r *opRec) {
			l.submitted++
			switch {
			case r.nacked.Load():
				l.nacked++
				return
			case r.acked.Load():
				l.acked++
			default:
				l.neverAcked++
			}
			if got := r.recv.Load(); got < r.expect {
				l.notReceived++
				l.missingReceipts += int64(r.expect - got)
			}
		})
	}
	return l
}

// rateOK reports whether the open-loop rate is usable.
func rateOK(r float64) bool { return r > 0 && !math.IsInf(r, 0) && !math.IsNaN(r) }
