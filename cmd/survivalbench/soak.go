package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// soak keeps n calls up for d while burn goroutines of this process keep the CPU busy,
// and counts false takeovers: calls that moved off a gateway instance that never died
// (its lease ran out because it could not renew in time). Every gateway's log is read
// for fenced calls and takeovers; each call's media URL is compared with its first.
func (b *bench) soak(ctx context.Context, n int, d time.Duration, burn int) error {
	pages := make([]*page, n)
	urls := make([]string, n)
	// The calls are placed 20 a second, as users arrive, not in one burst.
	for i := range pages {
		b.calls++
		pages[i] = newPage(b.st, b.calls)
		defer pages[i].detach()
		if err := pages[i].dial(ctx, b.far.uri); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, p := range pages {
		// A call may move before its page attaches (a false takeover during the set-up):
		// follow attaches it wherever it is.
		err := waitUntil(ctx, func() bool {
			fl, err := p.fields(ctx)
			if err != nil || fl["mgw_state"] != "connected" || fl["mgw_url"] == "" {
				return false
			}
			urls[i], p.callID = fl["mgw_url"], fl["call_id"]
			return true
		})
		if err != nil {
			return fmt.Errorf("call %d set up: %w", i, err)
		}
	}
	// Like pages, they follow a call's media to a new URL.
	fctx, stopFollow := context.WithCancel(ctx)
	followed := make(chan struct{})
	go func() { defer close(followed); follow(fctx, pages) }()
	defer func() { stopFollow(); <-followed }() // before the pages detach (deferred earlier)
	c0 := b.logCounts()
	bctx, stop := context.WithCancel(ctx)
	for range burn {
		go func() {
			for x := 0; bctx.Err() == nil; x++ {
				_ = x * x
			}
		}()
	}
	t0 := time.Now()
	fmt.Printf("\nsoak: %d calls up, %d goroutines burning CPU, for %s\n", n, burn, d)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	timer := time.NewTimer(d)
	defer timer.Stop()
wait:
	for {
		select {
		case <-ctx.Done():
			stop()
			return ctx.Err()
		case <-tick.C:
			c := b.logCounts().minus(c0)
			fmt.Printf("  %s: %d pauses (%d resumed), %d calls fenced, %d taken over so far\n", time.Since(t0).Round(time.Second),
				c.paused, c.resumed, c.fenced, c.taken)
		case <-timer.C:
			break wait
		}
	}
	stop()
	end := time.Now()
	c := b.logCounts().minus(c0)
	moved, failed := 0, 0
	var gaps []time.Duration
	for i, p := range pages {
		fl, err := p.fields(ctx)
		if err != nil {
			return err
		}
		switch {
		case fl["mgw_state"] != "connected":
			failed++
		case fl["mgw_url"] != urls[i]:
			moved++
		}
		gaps = append(gaps, maxGap(p.frames(), t0, end))
	}
	slices.Sort(gaps)
	fmt.Printf("soak: %d calls for %s with the CPU busy: %d pauses (%d resumed), %d fenced, %d taken over, %d moved, %d no longer connected\n",
		n, d, c.paused, c.resumed, c.fenced, c.taken, moved, failed)
	fmt.Printf("  longest interval between frames at a page over the soak: p50 %s  p99 %s  max %s\n",
		pct(gaps, 50), pct(gaps, 99), gaps[len(gaps)-1].Round(time.Millisecond))
	byes := b.far.byeCount()
	for _, p := range pages {
		if err := p.hangUp(ctx); err != nil {
			return err
		}
	}
	return waitUntil(ctx, func() bool { return b.far.byeCount() >= byes+n })
}

// counts are log lines of every gateway: calls paused and resumed (their lease ran
// short, and a renewal proved the claim still theirs), fenced, and taken over.
type counts struct{ paused, resumed, fenced, taken int }

func (c counts) minus(o counts) counts {
	return counts{c.paused - o.paused, c.resumed - o.resumed, c.fenced - o.fenced, c.taken - o.taken}
}

// logCounts counts, over every gateway's log, the calls paused, resumed, fenced and taken
// over.
func (b *bench) logCounts() counts {
	var c counts
	logs, _ := filepath.Glob(filepath.Join(b.dir, "gw*.log"))
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.Contains(l, `"msg":"paused: not acting on the call until a renewal proves the claim ours"`):
				c.paused++
			case strings.Contains(l, `"msg":"resumed: the claim is still ours"`):
				c.resumed++
			case strings.Contains(l, `"msg":"fenced: no longer acting on the call"`):
				c.fenced++
			case strings.Contains(l, `"msg":"taking over the call of a lost instance"`):
				c.taken++
			}
		}
		f.Close()
	}
	return c
}

// follow reattaches the media of every page whose player shows a new media URL, as the
// page's media session does, until ctx ends.
func follow(ctx context.Context, pages []*page) {
	for ctx.Err() == nil {
		for _, p := range pages {
			fl, err := p.fields(ctx)
			if err != nil {
				continue
			}
			p.mu.Lock()
			cur := p.url
			p.mu.Unlock()
			if u := fl["mgw_url"]; u != "" && u != cur && fl["mgw_state"] == "connected" {
				_ = p.attach(ctx, u)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}
