package main

import (
	"bufio"
	"context"
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
	"sync/atomic"
	"syscall"
	"time"

	"dsmgw/internal/proc"
	"dsmgw/mediagw"

	"github.com/prometheus/client_golang/prometheus"
)

// The gateway and the baseline forwarder run as child processes of the tool, so their
// CPU time is measured from /proc alone, separate from the load generator's.

// childGrace is how long a middle box gets to stop after SIGTERM before SIGKILL: a
// gateway child closes all its terminations first.
const childGrace = 5 * time.Second

// startChild re-executes this binary in role and returns once it printed READY, with the
// lines it printed before. The child is in its own process group, so a terminal's ^C
// reaches this tool only: the kernel then sends the child SIGTERM (Pdeathsig), which it
// handles as it handled the ^C it used to get.
func startChild(role string, args ...string) (*proc.Child, []string, error) {
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
	c, err := proc.Start(role, cmd, proc.Options{Pdeathsig: syscall.SIGTERM, Grace: childGrace})
	if err != nil {
		return nil, nil, err
	}
	lines := bufio.NewScanner(out)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	var head []string
	for lines.Scan() {
		l := lines.Text()
		if l == "READY" {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return c, head, nil
		}
		head = append(head, l)
	}
	c.Stop()
	return nil, nil, fmt.Errorf("%s child ended before READY", role)
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

// machineCPU returns the busy and total clock ticks of all CPUs, to show how much of the
// machine other processes took during a window (the machine is shared); zeros if
// /proc/stat cannot be read, which the report shows as no machine figure.
func machineCPU() (busy, total uint64) {
	busy, total, err := proc.MachineCPU()
	if err != nil {
		return 0, 0
	}
	return busy, total
}

// loadavg is the 1 minute load average ("?" if /proc/loadavg cannot be read).
func loadavg() string {
	la, err := proc.LoadAvg()
	if err != nil {
		return "?"
	}
	return la[0]
}
