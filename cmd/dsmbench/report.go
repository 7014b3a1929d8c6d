package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// The targets (issue 2, "Benchmark"), printed beside the figures as information.
// They never change what is measured or how.
const (
	targetAckedPerSec = 27000 // acknowledged ops/s at C=50, closed loop
	targetRecvP99C50  = 6 * time.Millisecond
	targetP99C10k     = 20 * time.Millisecond // at C=10,000, R=0.2 ops/s
	targetIdleBytes   = 20 << 10              // gateway memory per idle connection
)

func msf(d time.Duration) string { return fmt.Sprintf("%.3f", float64(d)/float64(time.Millisecond)) }

func lat(s summary) string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s ms  (n=%d)", msf(s.P50), msf(s.P90), msf(s.P99), msf(s.Max), s.N)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func perOp(cpu time.Duration, ops int64) string {
	if ops <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f µs/op", float64(cpu)/float64(ops)/1e3)
}

func pctCore(cpu, win time.Duration) string {
	if win <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%% of one core", 100*cpu.Seconds()/win.Seconds())
}

func report(w io.Writer, r *result) {
	o := r.o
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	loop := "closed loop (one op outstanding per client)"
	if o.mode == "open" {
		loop = fmt.Sprintf("open loop, %g ops/s per client, %s arrivals", o.rate, o.arrival)
		if o.arrival == "uniform" {
			loop = fmt.Sprintf("open loop, %g ops/s per client, evenly spaced with random phase", o.rate)
		}
	}
	p("== dsmbench: C=%d D=%d G=%d, %s, %d gateway(s), window %s after %s warmup, keyspace=%v, seed %d",
		o.c, o.d, o.g, loop, o.gateways, o.duration, o.warmup, o.keyspace, o.seed)
	p("command: %s", o.commandLine)
	p("load average before: %s  after: %s  (2-core machine shared with other work; compare ratios)", r.loadBefore, r.loadAfter)

	if b := r.base; b != nil {
		p("-- raw baseline: %d goroutines, closed-loop store.Commit, no WebSocket, no gateway running (%s window)", b.conc, b.window.Round(time.Millisecond))
		p("   commits/s        %.0f", b.perSec)
		p("   commit latency   %s", lat(b.lat))
		p("   one client alone %s", lat(b.single))
		if b.redisKnown {
			p("   redis CPU        %s  (%s)", perOp(b.redisCPU, b.commits), pctCore(b.redisCPU, b.window))
		}
		p("   tool CPU         %s", pctCore(b.toolCPU, b.window))
	}

	c := r.conn
	p("-- connect: %d clients in %s (%.0f/s; limit %g/s, %d at a time), %d retried dials",
		o.c, c.took.Round(time.Millisecond), float64(o.c)/c.took.Seconds(), o.dialRate, o.dialConc, c.retries)
	p("   dial+hello→welcome %s", lat(c.dialLat.summary()))
	p("   2 subscriptions    %s", lat(c.subLat.summary()))
	p("   gateway RSS: %s before connecting; %s with %d idle connections (%s after GC)",
		mib(r.rssBefore), mib(r.rssIdle), o.c, mib(r.rssIdleGC))
	perIdle := float64(r.rssIdle-r.rssBefore) / float64(o.c)
	perIdleGC := float64(r.rssIdleGC-r.rssBefore) / float64(o.c)
	p("   RSS per idle connection (2 subscriptions each): %.1f KiB  (%.1f KiB after GC)   [target < %d KiB]",
		perIdle/1024, perIdleGC/1024, targetIdleBytes>>10)

	p("-- load (%s window)", r.window.Round(time.Millisecond))
	if o.mode == "closed" {
		p("   acknowledged ops/s  %.0f   [target %d at C=50 closed loop]", r.ackedPerSec, targetAckedPerSec)
	} else {
		p("   acknowledged ops/s  %.0f   (offered %.0f)", r.ackedPerSec, float64(o.c)*o.rate)
	}
	p("   submit→ack          %s", lat(r.ack))
	p("   submit→receipt      %s   (each other subscriber)", lat(r.recv))
	recvTarget := targetRecvP99C50
	if o.c >= 10000 {
		recvTarget = targetP99C10k
	}
	p("                       [target p99 < %s ms at C=%s]", msf(recvTarget), map[bool]string{true: "10,000", false: "50"}[o.c >= 10000])
	l := r.loss
	p("-- after a drain of at most %s: %d ops submitted (whole run), %d acked, %d refused (nack)", o.drain, l.submitted, l.acked, l.nacked)
	p("   never acknowledged: %d   not received by every other subscriber: %d (%d receipts missing)   reconnects: %d",
		l.neverAcked, l.notReceived, l.missingReceipts, l.reconnects)
	if r.dupRecv > 0 || r.foreign > 0 || r.doErrs > 0 {
		p("   duplicate receipts: %d   undecodable values: %d   local op errors: %d", r.dupRecv, r.foreign, r.doErrs)
	}
	if len(r.codes) > 0 {
		var ks []string
		for k, v := range r.codes {
			ks = append(ks, fmt.Sprintf("%s=%d", k, v))
		}
		sort.Strings(ks)
		p("   refusals and errors: %s", strings.Join(ks, " "))
	}
	if r.gwLogLines > 0 {
		p("   gateway log: %d warning/error lines; first: ", r.gwLogLines)
		for _, l := range r.gwLogFirst {
			p("     %.300s", l)
		}
	}
	p("-- cost in the window")
	p("   gateway CPU  %s  (%s, %d process(es))", perOp(r.gwCPU, r.ackedInWin), pctCore(r.gwCPU, r.window), len(r.gwPIDs))
	p("   gateway RSS under load %s", mib(r.rssLoad))
	if r.redisPID > 0 {
		p("   redis CPU    %s  (%s)", perOp(r.redisCPU, r.ackedInWin), pctCore(r.redisCPU, r.window))
	}
	p("   tool CPU     %s  (clients; shares the machine)", pctCore(r.toolCPU, r.window))

	if b := r.base; b != nil && b.perSec > 0 {
		p("-- ratios to the raw baseline of this run")
		p("   dsm acked ops/s ÷ raw commit ops/s = %.3f", r.ackedPerSec/b.perSec)
		if b.lat.P50 > 0 && b.single.P50 > 0 {
			p("   submit→ack p50 ÷ raw commit p50 = %.2f (loaded, %d goroutines); ÷ one client alone = %.2f",
				float64(r.ack.P50)/float64(b.lat.P50), b.conc, float64(r.ack.P50)/float64(b.single.P50))
			p("   submit→ack p99 ÷ raw commit p99 = %.2f (loaded); ÷ one client alone = %.2f",
				float64(r.ack.P99)/float64(b.lat.P99), float64(r.ack.P99)/float64(b.single.P99))
		}
		if b.redisKnown && b.commits > 0 && r.ackedInWin > 0 {
			p("   redis CPU per op ÷ raw = %.2f",
				(float64(r.redisCPU)/float64(r.ackedInWin))/(float64(b.redisCPU)/float64(b.commits)))
		}
	}
	p("")
}
