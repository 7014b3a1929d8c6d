// Command mgwbench is the media gateway's load tool. It opens N terminations, each
// carrying G.711 (172-byte packets, 50 packets/s each way) between a WebSocket client and
// a UDP far end, both in this tool, and reports packets/s relayed, loss, latency p50/p99
// (send time is inside each payload) and the gateway's CPU per 1,000 packets. In the same
// run it measures a minimal Go UDP-to-UDP forwarder carrying the same load between UDP
// sockets of this tool, and prints the ratios.
//
// Method: the gateway and the forwarder each run as a child process (this binary with
// -role), so their CPU is read from /proc/<pid>/stat over the measurement window only,
// apart from the load generator's own CPU, which is printed too. Everything is on
// loopback; the run is bounded by -duration. With -api the tool drives an external
// gateway instead (give -gateway-pid to measure its CPU).
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"dsmgw/internal/proc"
	"dsmgw/mediagw"

	"github.com/gorilla/websocket"
)

// benchSecret is the API secret shared with the child gateway (loopback only).
const benchSecret = "mgwbench-secret-0123456789"

type options struct {
	n                int
	duration, warmup time.Duration
	drain            time.Duration
	senders          int
	gateway, base    bool
	api, secret      string
	gwPID            int
}

func main() {
	var o options
	role := flag.String("role", "", "internal: run as the child gateway or forwarder")
	flag.IntVar(&o.n, "n", 100, "terminations (calls)")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measurement window per run")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "traffic before the window")
	flag.DurationVar(&o.drain, "drain", time.Second, "wait for late packets after the window")
	flag.IntVar(&o.senders, "senders", 2, "sender goroutines")
	flag.BoolVar(&o.gateway, "gateway", true, "run the gateway measurement")
	flag.BoolVar(&o.base, "baseline", true, "run the UDP forwarder baseline")
	flag.StringVar(&o.api, "api", "", "external gateway API base URL (default: a child gateway)")
	flag.StringVar(&o.secret, "secret", "", "external gateway API secret")
	flag.IntVar(&o.gwPID, "gateway-pid", 0, "external gateway PID, for its CPU")
	fwN := flag.Int("pairs", 0, "internal: forwarder pairs")
	flag.Parse()
	var err error
	switch *role {
	case "gateway":
		err = runGatewayChild()
	case "forwarder":
		err = runForwarderChild(*fwN)
	case "":
		err = run(o)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mgwbench:", err)
		os.Exit(1)
	}
}

// result is one run's figures.
type result struct {
	name          string
	calls         int
	sentPerSec    float64
	relayedPerSec float64
	loss          float64
	p50, p99      time.Duration
	p99Dir        [2]time.Duration
	cpu           time.Duration // middle box CPU in the window
	cpuPer1000    time.Duration
	toolCPU       time.Duration
	sendErrs      uint64
	gwDrops       map[string]uint64
	machineBusy   float64 // CPUs busy machine-wide in the window (all processes)
	load          string
	windowSec     float64
}

func run(o options) error {
	if o.n < 1 || o.n > 5000 {
		return fmt.Errorf("-n %d out of 1-5000", o.n)
	}
	if o.duration > 5*time.Minute {
		return fmt.Errorf("-duration above 5m")
	}
	fmt.Printf("mgwbench: %d calls, G.711 172-byte packets, 50 pps each way (%d pps offered), window %s\n",
		o.n, o.n*100, o.duration)
	var res []result
	if o.gateway {
		r, err := runGateway(o)
		if err != nil {
			return fmt.Errorf("gateway run: %w", err)
		}
		res = append(res, r)
	}
	if o.base {
		r, err := runBaseline(o)
		if err != nil {
			return fmt.Errorf("baseline run: %w", err)
		}
		res = append(res, r)
	}
	report(res)
	return nil
}

func runGateway(o options) (result, error) {
	api, secret, pid := o.api, o.secret, o.gwPID
	if api == "" {
		c, head, err := startChild("gateway")
		if err != nil {
			return result{}, err
		}
		defer c.Stop()
		api, secret, pid = head[0], benchSecret, c.PID()
	}
	cl, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: api, Secret: secret})
	if err != nil {
		return result{}, err
	}
	ctx := context.Background()
	calls := make([]*benchCall, o.n)
	var ids []string
	var mu sync.Mutex
	errs := make(chan error, o.n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			lt, err := cl.AddLocal(ctx, mediagw.AddLocalRequest{Owner: "mgwbench", CallID: "bench-" + strconv.Itoa(i)})
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			ids = append(ids, lt.ID)
			mu.Unlock()
			far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				errs <- err
				return
			}
			_ = far.SetReadBuffer(1 << 18)
			fa := far.LocalAddr().(*net.UDPAddr)
			mu2, err := cl.AddRemote(ctx, lt.ID, mediagw.Remote{Address: "127.0.0.1", RTPPort: fa.Port,
				PayloadTypes: []mediagw.PayloadType{{PT: 0, Name: "PCMU", ClockRate: 8000}}})
			if err != nil {
				errs <- err
				return
			}
			ws, _, err := websocket.DefaultDialer.Dial(mu2.URL, nil)
			if err != nil {
				errs <- err
				return
			}
			calls[i] = &benchCall{idx: uint32(i), a: &wsEnd{conn: ws},
				b: &udpEnd{conn: far, dst: &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTPPort}}}
		}()
	}
	wg.Wait()
	defer func() {
		for _, id := range ids {
			_ = cl.Delete(ctx, id)
		}
	}()
	select {
	case err := <-errs:
		closeCalls(calls)
		return result{}, fmt.Errorf("setup: %w", err)
	default:
	}
	r, err := measure(o, "gateway (ws<->udp)", calls, pid)
	if err == nil {
		// The gateway's own view: packets it dropped, by reason, summed over the calls.
		if ts, lerr := cl.List(ctx, "mgwbench"); lerr == nil {
			r.gwDrops = map[string]uint64{}
			for _, t := range ts {
				for k, v := range t.Counters.Drops {
					r.gwDrops[k] += v
				}
			}
		}
	}
	return r, err
}

func runBaseline(o options) (result, error) {
	c, head, err := startChild("forwarder", "-pairs", strconv.Itoa(o.n))
	if err != nil {
		return result{}, err
	}
	defer c.Stop()
	calls := make([]*benchCall, o.n)
	for i, l := range head {
		f := strings.Fields(l)
		pa, _ := strconv.Atoi(f[0])
		pb, _ := strconv.Atoi(f[1])
		ea, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return result{}, err
		}
		eb, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return result{}, err
		}
		_ = ea.SetReadBuffer(1 << 18)
		_ = eb.SetReadBuffer(1 << 18)
		calls[i] = &benchCall{idx: uint32(i),
			a: &udpEnd{conn: ea, dst: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pa}},
			b: &udpEnd{conn: eb, dst: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: pb}}}
	}
	// Prime the forwarder's latching with one packet from each side.
	for _, c := range calls {
		buf := make([]byte, packetSize)
		fill(buf, c, dirAToB, false)
		_ = c.a.send(buf)
		fill(buf, c, dirBToA, false)
		_ = c.b.send(buf)
	}
	time.Sleep(100 * time.Millisecond)
	return measure(o, "baseline (udp->udp forwarder)", calls, c.PID())
}

// measure drives traffic: warmup, the window (packets flagged, CPU read at both ends),
// then a drain for late packets.
func measure(o options, name string, calls []*benchCall, pid int) (result, error) {
	st := &stats{lat: [2]*histogram{newHistogram(), newHistogram()}}
	var wg sync.WaitGroup
	for _, c := range calls {
		for _, ep := range []endpoint{c.a, c.b} {
			wg.Add(1)
			go func() { defer wg.Done(); ep.recvLoop(st.onPacket) }()
		}
	}
	var inWindow atomic.Bool
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { drive(calls, o.senders, st, inWindow.Load, stop); close(done) }()
	time.Sleep(o.warmup)
	cpu0, err := cpuOf(pid)
	if err != nil {
		return result{}, err
	}
	self0 := proc.SelfCPU()
	mb0, mt0 := machineCPU()
	t0 := time.Now()
	inWindow.Store(true)
	time.Sleep(o.duration)
	inWindow.Store(false)
	win := time.Since(t0)
	cpu1, _ := cpuOf(pid)
	self1 := proc.SelfCPU()
	mb1, mt1 := machineCPU()
	time.Sleep(o.drain)
	close(stop)
	<-done
	closeCalls(calls)
	wg.Wait()
	sent := st.sent[0].Load() + st.sent[1].Load()
	recv := st.recv[0].Load() + st.recv[1].Load()
	r := result{name: name, calls: len(calls), windowSec: win.Seconds(),
		sentPerSec: float64(sent) / win.Seconds(), relayedPerSec: float64(recv) / win.Seconds(),
		cpu: cpu1 - cpu0, toolCPU: self1 - self0, sendErrs: st.sendErrs.Load(), load: loadavg()}
	if mt1 > mt0 {
		r.machineBusy = float64(mb1-mb0) / float64(mt1-mt0) * float64(runtime.NumCPU())
	}
	if sent > 0 {
		r.loss = 1 - float64(recv)/float64(sent)
	}
	all := merge(st.lat[0], st.lat[1])
	r.p50, r.p99 = all.quantile(0.50), all.quantile(0.99)
	r.p99Dir = [2]time.Duration{st.lat[0].quantile(0.99), st.lat[1].quantile(0.99)}
	if recv > 0 && pid > 0 {
		r.cpuPer1000 = time.Duration(float64(r.cpu) / (float64(recv) / 1000))
	}
	return r, nil
}

func closeCalls(calls []*benchCall) {
	for _, c := range calls {
		if c != nil {
			c.a.close()
			c.b.close()
		}
	}
}

func cpuOf(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	return proc.CPU(pid)
}

func report(res []result) {
	fmt.Printf("\n%-30s %6s %10s %10s %8s %9s %9s %13s %13s %14s %10s %9s\n", "run", "calls", "sent/s", "relayed/s",
		"loss%", "p50 ms", "p99 ms", "p99 a->b ms", "p99 b->a ms", "cpu ms/1000pk", "box cpu%", "tool cpu%")
	for _, r := range res {
		fmt.Printf("%-30s %6d %10.0f %10.0f %8.4f %9.3f %9.3f %13.3f %13.3f %14.3f %10.1f %9.1f\n", r.name, r.calls,
			r.sentPerSec, r.relayedPerSec, r.loss*100, ms(r.p50), ms(r.p99), ms(r.p99Dir[0]), ms(r.p99Dir[1]),
			ms(r.cpuPer1000), 100*r.cpu.Seconds()/r.windowSec, 100*r.toolCPU.Seconds()/r.windowSec)
		others := r.machineBusy - (r.cpu.Seconds()+r.toolCPU.Seconds())/r.windowSec
		fmt.Printf("  %s: machine busy %.2f of %d CPUs in the window, of which other processes %.2f; load average %s\n",
			r.name, r.machineBusy, runtime.NumCPU(), others, r.load)
		if r.gwDrops != nil {
			fmt.Printf("  %s: drops reported by the gateway (whole run, incl. warmup and teardown): %v\n", r.name, r.gwDrops)
		}
		if r.sendErrs > 0 {
			fmt.Printf("  %s: %d send errors in the tool\n", r.name, r.sendErrs)
		}
	}
	if len(res) == 2 && res[1].cpuPer1000 > 0 && res[1].relayedPerSec > 0 {
		g, b := res[0], res[1]
		fmt.Printf("\nratios gateway/baseline: cpu per packet %.2fx, relayed/s %.3fx, p50 %+.3f ms, p99 %+.3f ms (added by the gateway over the forwarder)\n",
			float64(g.cpuPer1000)/float64(b.cpuPer1000), g.relayedPerSec/b.relayedPerSec, ms(g.p50-b.p50), ms(g.p99-b.p99))
	}
	fmt.Println("a->b: browser WebSocket to far-end UDP (gateway) / side A to side B (baseline); latency is tool send to tool receive, 5 us buckets")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
