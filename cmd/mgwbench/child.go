package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"dsmgw/mediagw"

	"github.com/prometheus/client_golang/prometheus"
)

// The gateway and the baseline forwarder run as child processes of the tool, so their
// CPU time is measured from /proc alone, separate from the load generator's.

// child is a running middle box.
type child struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

// startChild re-executes this binary in role and returns once it printed READY.
func startChild(role string, args ...string) (*child, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, append([]string{"-role", role}, args...)...)
	cmd.Stderr = os.Stderr
	cmd.Env = append(os.Environ(), "MGWBENCH_SECRET="+benchSecret)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	c := &child{cmd: cmd, lines: bufio.NewScanner(out)}
	c.lines.Buffer(make([]byte, 1<<20), 1<<20)
	var head []string
	for c.lines.Scan() {
		l := c.lines.Text()
		if l == "READY" {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return c, head, nil
		}
		head = append(head, l)
	}
	c.stop()
	return nil, nil, fmt.Errorf("%s child ended before READY", role)
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports for /proc times.
const clockTicks = 100

// procCPU returns the user+system CPU time of pid from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// runGatewayChild serves a mediagw.Gateway on loopback until SIGTERM.
func runGatewayChild() error {
	if path := os.Getenv("MGWBENCH_GATEWAY_CPUPROFILE"); path != "" {
		// For looking into the gateway's cost; the profiler itself adds a little CPU.
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	gw, err := mediagw.New(mediagw.Config{
		PortMin: 20000, PortMax: 29999, PublicWSURL: "ws://" + addr, Secret: os.Getenv("MGWBENCH_SECRET"),
		// The load tool's calls must not time out between setup and the window.
		MediaTimeout: time.Minute, MaxPacket: 1500,
	}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw.APIHandler())
	mux.Handle("/media/", gw.MediaHandler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Println("http://" + addr)
	fmt.Println("READY")
	err = gw.Run(ctx)
	_ = srv.Close()
	return err
}

// runForwarderChild is the baseline: n socket pairs; each datagram read on one side is
// written from the other side's socket to the last source seen there (latching, as the
// gateway does). No checks: the machine's limit for a Go userspace relay.
func runForwarderChild(n int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	type side struct {
		conn *net.UDPConn
		peer atomic.Pointer[netip.AddrPort]
	}
	var all []*net.UDPConn
	for i := 0; i < n; i++ {
		var pair [2]*side
		for j := range pair {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return err
			}
			pair[j] = &side{conn: c}
			all = append(all, c)
		}
		fmt.Println(pair[0].conn.LocalAddr().(*net.UDPAddr).Port, pair[1].conn.LocalAddr().(*net.UDPAddr).Port)
		for j := range pair {
			in, out := pair[j], pair[1-j]
			go func() {
				buf := make([]byte, 1500)
				for {
					k, src, err := in.conn.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					if p := in.peer.Load(); p == nil || *p != src {
						in.peer.Store(&src)
					}
					if dst := out.peer.Load(); dst != nil {
						_, _ = out.conn.WriteToUDPAddrPort(buf[:k], *dst)
					}
				}
			}()
		}
	}
	fmt.Println("READY")
	<-ctx.Done()
	for _, c := range all {
		c.Close()
	}
	return nil
}

// machineCPU returns the busy and total jiffies of all CPUs from /proc/stat, to show how
// much of the machine other processes took during a window (the machine is shared).
func machineCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// loadavg is the first field of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return f[0]
}
