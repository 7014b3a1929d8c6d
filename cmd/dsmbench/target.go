package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"dsmgw/internal/proc"
	"dsmgw/otbridge"
)

// watched is a process group whose CPU a -target run reports (nginx with its workers, a
// gateway, Redis), named as the user named it.
type watched struct {
	name string
	pgid int
}

// urlList parses a comma-separated list of base URLs.
func urlList(dst *[]string) func(string) error {
	return func(v string) error {
		for _, s := range strings.Split(v, ",") {
			u, err := url.Parse(strings.TrimSpace(s))
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q is not an http(s) base URL", s)
			}
			*dst = append(*dst, strings.TrimSuffix(u.String(), "/"))
		}
		return nil
	}
}

// watchList parses name=PID,... .
func watchList(dst *[]watched) func(string) error {
	return func(v string) error {
		for _, s := range strings.Split(v, ",") {
			name, pid, ok := strings.Cut(strings.TrimSpace(s), "=")
			n, err := strconv.Atoi(pid)
			if !ok || name == "" || err != nil || n <= 0 {
				return fmt.Errorf("%q is not name=PID", s)
			}
			*dst = append(*dst, watched{name: name, pgid: n})
		}
		return nil
	}
}

// fillTarget checks the options of a run against running gateways.
func (o *options) fillTarget() error {
	if len(o.target) == 0 {
		if len(o.direct) > 0 || len(o.cpu) > 0 || o.jsonPath != "" {
			return errors.New("-direct, -cpu and -json go with -target")
		}
		return nil
	}
	if o.d != o.c {
		return fmt.Errorf("-d %d with -target: the production grants give a session only its own players/<client>/... objects, so every client has its own player object (-d equal to -c)", o.d)
	}
	if o.redis == "" {
		o.baseline = 0 // the raw baseline needs the gateways' Redis: -redis
	}
	return nil
}

// phaseResult is what one phase of a -target run measured: the clients on one set of
// URLs.
type phaseResult struct {
	Name        string             `json:"name"`
	URLs        []string           `json:"urls"`
	Instances   map[string]int     `json:"instances"` // connections per gateway instance
	Window      time.Duration      `json:"window_ns"`
	AckedPerSec float64            `json:"acked_per_sec"`
	AckP50      time.Duration      `json:"ack_p50_ns"`
	AckP99      time.Duration      `json:"ack_p99_ns"`
	RecvP99     time.Duration      `json:"recv_p99_ns"`
	Loss        lossJSON           `json:"loss"`
	Codes       map[string]int64   `json:"codes,omitempty"`
	CPU         map[string]float64 `json:"cpu_cores"` // CPU seconds per second in the window, by watched group
	ToolCPU     float64            `json:"tool_cpu_cores"`
	MachineCPU  float64            `json:"machine_cpu_cores"` // every process together
	ackedInWin  int64
	ack, recv   summary
	conn        connectStats
}

// lossJSON is lossCount with exported names.
type lossJSON struct {
	Submitted, Acked, Nacked, NeverAcked, NotReceived, Reconnects int64
}

// targetResult is a whole -target run.
type targetResult struct {
	Cores    int           `json:"cores"`
	Baseline float64       `json:"raw_commits_per_sec,omitempty"`
	Phases   []phaseResult `json:"phases"`
	base     *baseResult
}

// runTarget loads running gateways: through -target, then (with -direct) straight at
// the gateways behind it, the same workload with fresh sessions each time.
func runTarget(ctx context.Context, o options) (*targetResult, error) {
	if err := o.fill(); err != nil {
		return nil, err
	}
	if _, err := proc.RaiseNoFile(); err != nil {
		return nil, err
	}
	res := &targetResult{Cores: runtime.NumCPU()}
	before := loadAvg()
	if o.baseline > 0 {
		o.progress("raw baseline on %s: %d goroutines committing for %s", o.redis, o.baselineC, o.baseline)
		b, err := runBaseline(ctx, o, o.redis, o.redisPID)
		if err != nil {
			return nil, err
		}
		res.base, res.Baseline = &b, b.perSec
	}
	phases := []struct {
		name string
		urls []string
	}{{"through " + strings.Join(o.target, ","), o.target}}
	if len(o.direct) > 0 {
		phases = append(phases, struct {
			name string
			urls []string
		}{"direct " + strings.Join(o.direct, ","), o.direct})
	}
	for _, ph := range phases {
		o.progress("%s: %d clients", ph.name, o.c)
		r, err := runPhase(ctx, o, ph.name, ph.urls)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ph.name, err)
		}
		res.Phases = append(res.Phases, r)
	}
	reportTarget(o, res, before, loadAvg())
	if o.jsonPath != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(o.jsonPath, b, 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// sessionTimeout bounds one GET /session: a gateway answers it in microseconds.
const sessionTimeout = 10 * time.Second

// sessions fetches one session per group of G clients, spread over urls as pages would
// land, through whatever balances them.
func sessions(ctx context.Context, o options, urls []string) ([]otbridge.Session, error) {
	n := (o.c + o.g - 1) / o.g
	out := make([]otbridge.Session, n)
	hc := &http.Client{Timeout: sessionTimeout}
	for i := range out {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, urls[i%len(urls)]+"/session", nil)
		if err != nil {
			return nil, err
		}
		res, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("GET /session: %w", err)
		}
		err = json.NewDecoder(res.Body).Decode(&out[i])
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK || out[i].Token == "" {
			return nil, fmt.Errorf("GET %s/session: %s %v", urls[i%len(urls)], res.Status, err)
		}
	}
	return out, nil
}

// wsURL turns a base URL into its /dsm WebSocket URL.
func wsURL(base string) string {
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + "/dsm"
	}
	return "ws://" + strings.TrimPrefix(base, "http://") + "/dsm"
}

// runPhase connects the clients to urls, loads them, drains and closes them.
func runPhase(ctx context.Context, o options, name string, urls []string) (phaseResult, error) {
	r := phaseResult{Name: name, URLs: urls, Instances: map[string]int{}, CPU: map[string]float64{}}
	sess, err := sessions(ctx, o, urls)
	if err != nil {
		return r, err
	}
	b := newBench(o)
	b.sessions = sess
	defer b.closeAll()
	var ws []string
	for _, u := range urls {
		ws = append(ws, wsURL(u))
	}
	if r.conn, err = b.connect(ctx, ws); err != nil {
		return r, fmt.Errorf("connect: %w", err)
	}
	for _, bc := range b.clients {
		r.Instances[bc.cl.Welcome().Instance]++
	}
	sleepCtx(ctx, o.settle)
	var cpu0 map[string]time.Duration
	var self0 time.Duration
	var busy0, total0 uint64
	err = b.load(ctx, func() error {
		var err error
		if cpu0, err = groupCPUs(o.cpu); err != nil {
			return err
		}
		self0 = proc.SelfCPU()
		busy0, total0, _ = proc.MachineCPU()
		return nil
	}, func() {
		cpu1, _ := groupCPUs(o.cpu)
		self1 := proc.SelfCPU()
		busy1, total1, _ := proc.MachineCPU()
		win := b.st.win.length().Seconds()
		for name, c := range cpu1 {
			r.CPU[name] = (c - cpu0[name]).Seconds() / win
		}
		r.ToolCPU = (self1 - self0).Seconds() / win
		if total1 > total0 {
			// Ticks of all CPUs: busy share of the machine, in cores.
			r.MachineCPU = float64(busy1-busy0) / float64(total1-total0) * float64(runtime.NumCPU())
		}
	})
	if err != nil {
		return r, err
	}
	l := b.drain(ctx, o.drain)
	st := b.st
	r.Window = st.win.length()
	r.ackedInWin = st.ackedInWin.Load()
	r.AckedPerSec = float64(r.ackedInWin) / r.Window.Seconds()
	r.ack, r.recv = st.ackLat.summary(), st.recvLat.summary()
	r.AckP50, r.AckP99, r.RecvP99 = r.ack.P50, r.ack.P99, r.recv.P99
	r.Loss = lossJSON{Submitted: l.submitted, Acked: l.acked, Nacked: l.nacked, NeverAcked: l.neverAcked,
		NotReceived: l.notReceived, Reconnects: l.reconnects}
	st.mu.Lock()
	r.Codes = st.codes
	st.mu.Unlock()
	return r, nil
}

// groupCPUs reads the CPU of every watched process group.
func groupCPUs(ws []watched) (map[string]time.Duration, error) {
	out := make(map[string]time.Duration, len(ws))
	for _, w := range ws {
		d, err := proc.GroupCPU(w.pgid)
		if err != nil {
			return nil, fmt.Errorf("-cpu %s=%d: %w", w.name, w.pgid, err)
		}
		out[w.name] = d
	}
	return out, nil
}
