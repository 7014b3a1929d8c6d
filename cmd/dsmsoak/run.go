package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
)

// result is what a run measured.
type result struct {
	base, final     snapshot
	sessions, calls int64
	failed          int64
}

// run is one soak: start the peers and the gateway, warm up, take the baseline, run the
// waves, wait for the janitor, compare.
func run(ctx context.Context, o options, out io.Writer) (res result, err error) {
	dir, err := os.MkdirTemp("", "dsmsoak-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	rs, err := redisrun.Start(ctx, redisrun.Options{MaxClients: 10000, Dir: dir, Proc: childOptions()})
	if err != nil {
		return res, err
	}
	defer rs.Stop()
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr, PoolSize: 4})
	defer rdb.Close()

	uas, stopUAS, err := startUAS(dir)
	if err != nil {
		return res, err
	}
	defer stopUAS()

	var sb [16]byte
	_, _ = rand.Read(sb[:])
	gw, base, err := startGateway(ctx, o, dir, rs.Addr, hex.EncodeToString(sb[:]))
	if err != nil {
		return res, err
	}
	defer gw.Stop()

	fmt.Fprintf(out, "dsmsoak: %d sessions (%.0f%% with a call to a sipp UAS), %d pages at once, %d live pages throughout, grace %v, feed age %v%s\n",
		o.sessions, 100*o.calls, o.conc, o.live, o.grace, o.feedAge, map[bool]string{true: ", janitor removes nothing (-keep)"}[o.keep])
	p := newPages(base, uas)
	closeLive, err := p.openLive(ctx, o.live)
	if err != nil {
		return res, err
	}
	defer closeLive()
	if o.warmup > 0 {
		t0 := time.Now()
		p.run(ctx, o.warmup, o.conc, o.calls)
		fmt.Fprintf(out, "warm-up: %d sessions in %v, %d failed\n", o.warmup, time.Since(t0).Round(time.Millisecond), p.failed.Load())
	}
	q, err := waitQuiet(ctx, rdb, int64(o.live), o.keep && o.warmup > 0, o.settle)
	if err != nil {
		return res, fmt.Errorf("after the warm-up: %w", err)
	}
	base0, err := measure(ctx, rdb, gw, base+"/metrics", o.verbose)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "baseline (after %v of janitor): %s\n", q.Round(time.Second), base0)

	p.sessions.Store(0)
	p.calls.Store(0)
	p.failed.Store(0)
	var peakRSS, peakUsed int64
	start := time.Now()
	for done, wave := 0, 1; done < o.sessions && ctx.Err() == nil; wave++ {
		n := min(o.wave, o.sessions-done)
		t0 := time.Now()
		p.run(ctx, n, o.conc, o.calls)
		done += n
		s, err := measure(ctx, rdb, gw, base+"/metrics", false)
		if err != nil {
			return res, err
		}
		peakRSS, peakUsed = max(peakRSS, s.rss), max(peakUsed, s.used)
		el := time.Since(t0)
		fmt.Fprintf(out, "wave %3d: %6d sessions %6.0f/s  calls %6d  failed %d  | %s\n",
			wave, done, float64(n)/el.Seconds(), p.calls.Load(), p.failed.Load(), s)
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	soak := time.Since(start)
	q, qerr := waitQuiet(ctx, rdb, int64(o.live), o.keep, o.settle)
	final, err := measure(ctx, rdb, gw, base+"/metrics", o.verbose)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "after (%v of janitor): %s\n", q.Round(time.Second), final)
	report(out, o, base0, final, p, soak, peakRSS, peakUsed)
	res = result{base: base0, final: final, sessions: p.sessions.Load(), calls: p.calls.Load(), failed: p.failed.Load()}
	if qerr != nil {
		return res, qerr
	}
	if err := p.err(); err != nil {
		return res, fmt.Errorf("%d sessions failed; the first: %w", p.failed.Load(), err)
	}
	return res, nil
}

func (s snapshot) String() string {
	return fmt.Sprintf("keys %d  used_memory %s (dataset %s)  clients %d  gateway RSS %s (heap %s, %d goroutines)  writer index %d (%.1f MiB)  presence %d  index entries %d  feed %d",
		s.keys, mib(s.used), mib(s.dataset), s.clients, mib(s.rss), mib(s.heap), s.gor, s.writers, s.writerMB, s.presence, s.players, s.feed)
}

func mib(b int64) string { return fmt.Sprintf("%.2f MiB", float64(b)/(1<<20)) }

// report prints the comparison with the baseline.
func report(out io.Writer, o options, b, a snapshot, p *pages, soak time.Duration, peakRSS, peakUsed int64) {
	n := p.sessions.Load()
	fmt.Fprintf(out, "\n%d sessions (%d with a call) in %v: %.0f sessions/s, %d failed\n",
		n, p.calls.Load(), soak.Round(time.Second), float64(n)/soak.Seconds(), p.failed.Load())
	fmt.Fprintf(out, "| | baseline | after | difference |\n| --- | --- | --- | --- |\n")
	fmt.Fprintf(out, "| Redis keys | %d | %d | %+d |\n", b.keys, a.keys, a.keys-b.keys)
	fmt.Fprintf(out, "| Redis used_memory | %d | %d | %+d B (%+.2f%%) |\n", b.used, a.used, a.used-b.used, pct(a.used-b.used, b.used))
	fmt.Fprintf(out, "| Redis used_memory without client buffers | %d | %d | %+d B (%+.2f%%) |\n", b.used-b.cliMem, a.used-a.cliMem,
		(a.used-a.cliMem)-(b.used-b.cliMem), pct((a.used-a.cliMem)-(b.used-b.cliMem), b.used-b.cliMem))
	fmt.Fprintf(out, "| Redis used_memory_dataset | %d | %d | %+d B |\n", b.dataset, a.dataset, a.dataset-b.dataset)
	fmt.Fprintf(out, "| Redis connections (the gateway's pool) | %d | %d | %+d |\n", b.clients, a.clients, a.clients-b.clients)
	fmt.Fprintf(out, "| gateway RSS | %s | %s | %+.2f MiB (peak during the soak %s) |\n", mib(b.rss), mib(a.rss),
		float64(a.rss-b.rss)/(1<<20), mib(peakRSS))
	fmt.Fprintf(out, "| gateway heap in use after a GC | %s | %s | %+.2f MiB |\n", mib(b.heap), mib(a.heap), float64(a.heap-b.heap)/(1<<20))
	fmt.Fprintf(out, "| gateway goroutines (stacks) | %d (%s) | %d (%s) | %+d |\n", b.gor, mib(b.stack), a.gor, mib(a.stack), a.gor-b.gor)
	fmt.Fprintf(out, "| Redis used_memory peak between waves | | %s | |\n", mib(peakUsed))
	if n > 0 {
		fmt.Fprintf(out, "Redis memory left per page session: %.1f B (without client buffers %.1f B, dataset %.1f B)\n",
			float64(a.used-b.used)/float64(n), float64((a.used-a.cliMem)-(b.used-b.cliMem))/float64(n),
			float64(a.dataset-b.dataset)/float64(n))
	}
	if gone, added := keyDiff(b.names, a.names); len(gone)+len(added) > 0 {
		fmt.Fprintf(out, "keys only in the baseline: %s\nkeys only after: %s\n", listSome(gone), listSome(added))
	}
	if a.perKey != nil {
		var sb, sa int64
		for _, v := range b.perKey {
			sb += v
		}
		for _, v := range a.perKey {
			sa += v
		}
		fmt.Fprintf(out, "\nMEMORY USAGE summed over every key: %d → %d (%+d B); keys whose usage changed:\n", sb, sa, sa-sb)
		keys := make([]string, 0, len(a.perKey))
		for k := range a.perKey {
			keys = append(keys, k)
		}
		for k := range b.perKey {
			if _, ok := a.perKey[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if b.perKey[k] != a.perKey[k] {
				fmt.Fprintf(out, "  %-40s %8d → %8d\n", k, b.perKey[k], a.perKey[k])
			}
		}
		fmt.Fprintln(out, "MEMORY STATS, baseline → after:")
		names := make([]string, 0, len(a.stats))
		for k := range a.stats {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if b.stats[k] != a.stats[k] {
				fmt.Fprintf(out, "  %-28s %s → %s\n", k, b.stats[k], a.stats[k])
			}
		}
	}
}

// keyDiff returns the names only in b and those only in a, sorted.
func keyDiff(b, a map[string]bool) (gone, added []string) {
	for k := range b {
		if !a[k] {
			gone = append(gone, k)
		}
	}
	for k := range a {
		if !b[k] {
			added = append(added, k)
		}
	}
	sort.Strings(gone)
	sort.Strings(added)
	return gone, added
}

// listSome joins up to 10 names, and says how many more there are.
func listSome(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > 10 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:10], " "), len(names)-10)
	}
	return strings.Join(names, " ")
}

func pct(d, of int64) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(d) / float64(of)
}

// startUAS runs sipp's built-in UAS (180, then 200 at once; it waits for our BYE) on a
// free loopback port and returns its address and the func that stops it.
func startUAS(dir string) (string, func(), error) {
	bin, err := exec.LookPath("sipp")
	if err != nil {
		return "", nil, fmt.Errorf("sipp not installed (apt-get install sip-tester): %w", err)
	}
	uport, err := proc.FreePort()
	if err != nil {
		return "", nil, err
	}
	cport, _ := proc.FreePort()
	mport, _ := proc.FreePort()
	cmd := exec.Command(bin, "-sn", "uas", "-i", "127.0.0.1", "-p", strconv.Itoa(uport),
		"-cp", strconv.Itoa(cport), "-mi", "127.0.0.1", "-mp", strconv.Itoa(mport&^1),
		"-buff_size", "4194304", "-nostdin")
	cmd.Dir = dir
	o := childOptions()
	o.LogFile = dir + "/sipp.log"
	c, err := proc.Start("sipp", cmd, o)
	if err != nil {
		return "", nil, err
	}
	return "127.0.0.1:" + strconv.Itoa(uport), c.Stop, nil
}
