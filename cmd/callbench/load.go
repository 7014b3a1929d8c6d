package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"dsmgw/internal/proc"
	"dsmgw/store"
)

// result is one measured run.
type result struct {
	rate     float64 // completed setups per second over the load window
	p50, p99 time.Duration
	calls    int
	failed   int
}

func percentiles(d []time.Duration) (time.Duration, time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)*50/100], d[min(len(d)-1, len(d)*99/100)]
}

// tracker follows the calls of one run through a feed subscription, as a browser would
// see them.
type tracker struct {
	mu        sync.Mutex // guards the maps and slices
	written   map[string]time.Time
	delays    []time.Duration
	connected map[string]bool
	failed    int
	ended     int
	hangup    chan string // players to hang up (bounded by the number of calls)
}

func (s *stack) load(ctx context.Context, rate int, dur, settle time.Duration) (result, error) {
	total := int(float64(rate) * dur.Seconds())
	tr := &tracker{written: make(map[string]time.Time, total), connected: make(map[string]bool, total),
		hangup: make(chan string, total)}
	prefix := fmt.Sprintf("players/b%s-%d-", s.runID, rate)
	unsub := s.watch.Subscribe(func(c store.Change) {
		if !strings.HasPrefix(c.Obj, prefix) || c.Kind != store.ChangeOp {
			return
		}
		for _, op := range c.Ops {
			if op.Kind != store.OpSet || op.Value == nil {
				continue
			}
			switch {
			case op.Field == "mgw_url":
				now := time.Now()
				tr.mu.Lock()
				if t0, ok := tr.written[c.Obj]; ok && !tr.connected[c.Obj] {
					tr.connected[c.Obj] = true
					tr.delays = append(tr.delays, now.Sub(t0))
					tr.hangup <- c.Obj
				}
				tr.mu.Unlock()
			case op.Field == "mgw_state" && *op.Value == "failed":
				tr.mu.Lock()
				tr.failed++
				tr.mu.Unlock()
			case op.Field == "mgw_state" && *op.Value == "disconnected":
				tr.mu.Lock()
				tr.ended++
				tr.mu.Unlock()
			}
		}
	})
	defer unsub()

	// Browsers hang up as soon as they see the media URL (then the index entry goes, as
	// when a page leaves).
	var hwg sync.WaitGroup
	hctx, hcancel := context.WithCancel(ctx)
	defer hcancel()
	for i := 0; i < 32; i++ {
		hwg.Add(1)
		go func() {
			defer hwg.Done()
			for {
				select {
				case <-hctx.Done():
					return
				case p := <-tr.hangup:
					_, _ = s.st.Commit(ctx, store.Commit{Obj: p, Client: "bench", Base: -1,
						Ops: []store.Op{store.Set("player_state", "disconnected")}})
				}
			}
		}()
	}

	// Writers: one op per player (what the browser's media player adapter commits) and
	// the index entry, at the offered rate.
	var sent atomic.Int64
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for i := 0; i < total && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		p := fmt.Sprintf("%s%d/audio", prefix, i)
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tr.mu.Lock()
			tr.written[p] = time.Now()
			tr.mu.Unlock()
			_, err := s.st.Commit(ctx, store.Commit{Obj: p, Client: "bench", Base: -1, Ops: []store.Op{
				store.Set("service", "mmtel"), store.Set("remote", "sip:service@"+s.uas),
				store.Set("encoding", "PCMU"), store.Set("player_state", "connecting")}})
			if err == nil {
				_, err = s.st.Commit(ctx, store.Commit{Obj: "players", Client: "bench", Base: -1,
					Ops: []store.Op{store.Set(p, "audio")}})
			}
			if err != nil {
				tr.mu.Lock()
				tr.failed++
				tr.mu.Unlock()
			}
			sent.Add(1)
		}()
	}
	wg.Wait()
	window := time.Since(start)
	// Let the last calls finish (bounded).
	deadline := time.Now().Add(settle)
	for time.Now().Before(deadline) {
		tr.mu.Lock()
		done := tr.ended+tr.failed >= total
		tr.mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	hcancel()
	hwg.Wait()
	// Clean the index so the next rate's rescans do not walk old players.
	tr.mu.Lock()
	var dels []store.Op
	for p := range tr.written {
		dels = append(dels, store.Del(p))
		if len(dels) == 32 {
			_, _ = s.st.Commit(ctx, store.Commit{Obj: "players", Client: "bench", Base: -1, Ops: dels})
			dels = nil
		}
	}
	if len(dels) > 0 {
		_, _ = s.st.Commit(ctx, store.Commit{Obj: "players", Client: "bench", Base: -1, Ops: dels})
	}
	r := result{calls: int(sent.Load())}
	r.failed = tr.failed + (total - len(tr.delays) - tr.failed)
	r.rate = float64(len(tr.delays)) / window.Seconds()
	r.p50, r.p99 = percentiles(tr.delays)
	tr.mu.Unlock()
	return r, nil
}

// sippDirect runs sipp's built-in UAC against a fresh built-in UAS at rate for dur and
// reads the INVITE → 200 times (sipp's response time 1) from its rtt trace.
func sippDirect(ctx context.Context, peers *children, rate int, dur time.Duration) (result, error) {
	uport, _ := proc.FreePort()
	cport, _ := proc.FreePort()
	if _, _, err := peers.start("sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", strconv.Itoa(uport),
		"-cp", strconv.Itoa(cport), "-buff_size", "4194304", "-nostdin"); err != nil {
		return result{}, err
	}
	time.Sleep(300 * time.Millisecond)
	total := int(float64(rate) * dur.Seconds())
	cport2, _ := proc.FreePort()
	start := time.Now()
	uac, dir, err := peers.start("sipp", "-sn", "uac", "-i", "127.0.0.1", "-p", "0",
		"-cp", strconv.Itoa(cport2), "-buff_size", "4194304", "-nostdin",
		"-r", strconv.Itoa(rate), "-m", strconv.Itoa(total), "-trace_rtt", "-rtt_freq", "1",
		"127.0.0.1:"+strconv.Itoa(uport))
	if err != nil {
		return result{}, err
	}
	errc := make(chan error, 1)
	go func() { errc <- uac.Wait() }()
	var werr error
	select {
	case werr = <-errc:
	case <-ctx.Done():
		return result{}, ctx.Err()
	case <-time.After(dur + 30*time.Second):
		return result{}, fmt.Errorf("sipp uac did not finish")
	}
	window := time.Since(start)
	files, _ := filepath.Glob(filepath.Join(dir, "*_rtt.csv"))
	var rtts []time.Duration
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			parts := strings.Split(sc.Text(), ";")
			if len(parts) < 2 {
				continue
			}
			v, err := strconv.ParseFloat(parts[1], 64)
			if err != nil {
				continue
			}
			rtts = append(rtts, time.Duration(v*float64(time.Millisecond)))
		}
		fh.Close()
	}
	r := result{calls: total, rate: float64(len(rtts)) / window.Seconds()}
	r.failed = total - len(rtts)
	if werr != nil && r.failed == 0 {
		r.failed = -1 // sipp reported failures its trace does not show
	}
	r.p50, r.p99 = percentiles(rtts)
	return r, nil
}
