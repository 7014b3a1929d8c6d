package main

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"
)

// reportTarget prints a -target run: each phase's throughput, latency, losses and CPU
// by process group, and the ratios between the phases and to the raw baseline.
func reportTarget(o options, r *targetResult, loadBefore, loadAfter string) {
	p := func(format string, args ...any) { fmt.Fprintf(o.out, format+"\n", args...) }
	loop := "closed loop (one op outstanding per client)"
	if o.mode == "open" {
		loop = fmt.Sprintf("open loop, %g ops/s per client", o.rate)
	}
	p("== dsmbench against running gateways: C=%d clients, G=%d per session (tabs of one page): each writes its own player object, the first of each group also the group's hot object, which all G read; %s, window %s after %s warmup, seed %d",
		o.c, o.g, loop, o.duration, o.warmup, o.seed)
	p("command: %s", o.commandLine)
	p("load average before: %s  after: %s  (%d cores, shared with other work; compare the phases)", loadBefore, loadAfter, r.Cores)
	if b := r.base; b != nil {
		p("-- raw baseline: %d goroutines, closed-loop store.Commit straight to Redis (%s window)", b.conc, b.window.Round(time.Millisecond))
		p("   commits/s        %.0f", b.perSec)
		p("   commit latency   %s", lat(b.lat))
	}
	for _, ph := range r.Phases {
		p("-- %s", ph.Name)
		var inst []string
		for _, k := range slices.Sorted(maps.Keys(ph.Instances)) {
			inst = append(inst, fmt.Sprintf("%s=%d", k, ph.Instances[k]))
		}
		p("   connections per instance  %s  (connected in %s)", strings.Join(inst, " "), ph.conn.took.Round(time.Millisecond))
		p("   acknowledged ops/s  %.0f", ph.AckedPerSec)
		p("   submit→ack          %s", lat(ph.ack))
		p("   submit→receipt      %s   (each other subscriber)", lat(ph.recv))
		l := ph.Loss
		p("   after the drain: %d submitted, %d acked, %d refused; never acknowledged %d, not received by every subscriber %d, reconnects %d",
			l.Submitted, l.Acked, l.Nacked, l.NeverAcked, l.NotReceived, l.Reconnects)
		if len(ph.Codes) > 0 {
			var ks []string
			for k, v := range ph.Codes {
				ks = append(ks, fmt.Sprintf("%s=%d", k, v))
			}
			sort.Strings(ks)
			p("   refusals and errors: %s", strings.Join(ks, " "))
		}
		p("   CPU in the window (cores busy; %d cores in all):", r.Cores)
		for _, name := range slices.Sorted(maps.Keys(ph.CPU)) {
			p("     %-10s %.2f  (%s)", name, ph.CPU[name], perOp(time.Duration(ph.CPU[name]*float64(ph.Window)), ph.ackedInWin))
		}
		p("     %-10s %.2f  (the load clients)", "dsmbench", ph.ToolCPU)
		p("     %-10s %.2f  (every process on the machine)", "machine", ph.MachineCPU)
	}
	if len(r.Phases) == 2 && r.Phases[1].AckedPerSec > 0 {
		p("-- through ÷ direct: acked ops/s %.3f", r.Phases[0].AckedPerSec/r.Phases[1].AckedPerSec)
	}
	if r.Baseline > 0 {
		for _, ph := range r.Phases {
			p("-- %s ÷ raw commits/s: %.3f", strings.Fields(ph.Name)[0], ph.AckedPerSec/r.Baseline)
		}
	}
	p("")
}
