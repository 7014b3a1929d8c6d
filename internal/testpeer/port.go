// Package testpeer starts real peers for tests (redis-server, a Redis Cluster, and later
// sipp, Kamailio, baresip and Chromium) on free loopback ports, waits until they are ready
// and stops them by PID when the test ends. Every helper takes a testing.TB, so each test
// gets private peers and tests can run in parallel.
package testpeer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago. It binds port 0 and
// closes the listener, so a peer that starts right after can take it; the tiny race with
// another process is accepted in tests.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testpeer: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPort returns a port free for both UDP and TCP on 127.0.0.1 (SIP peers listen on
// both).
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testpeer: free udp port: %v", err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return port
	}
	t.Fatalf("testpeer: no port free for both udp and tcp")
	return 0
}

// Need fails the test when a peer binary is missing. CI installs every peer, so a missing
// binary is a broken setup, never a reason to skip.
func Need(t testing.TB, bin string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("testpeer: %s not installed (run .ci/run or install it): %v", bin, err)
	}
	return p
}

// StartProcess starts cmd in its own process group, logs its output to a file in a test
// temporary directory, and registers a cleanup that stops it (SIGTERM, then SIGKILL after
// 3 s) by PID. The kernel kills the peer if the test binary dies first (a -timeout panic
// runs no cleanups), so no peer outlives its test.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *os.File {
	t.Helper()
	logf, _ := startProcess(t, name, cmd)
	return logf
}

// startProcess is StartProcess that also returns a channel closed when the process exits.
func startProcess(t testing.TB, name string, cmd *exec.Cmd) (*os.File, <-chan struct{}) {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), name+"-*.log")
	if err != nil {
		t.Fatalf("testpeer: log file for %s: %v", name, err)
	}
	if cmd.Stdout == nil {
		cmd.Stdout = logf
	}
	if cmd.Stderr == nil {
		cmd.Stderr = logf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testpeer: start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(logf.Name()); err == nil && len(b) > 0 {
				if len(b) > 8000 {
					b = b[len(b)-8000:]
				}
				t.Logf("--- %s (pid %d) log tail ---\n%s", name, pid, b)
			}
		}
		logf.Close()
	})
	return logf, done
}

// bindGrace is how long a peer must keep running after its port answers: one that could
// not bind exits within milliseconds (Redis at once, Kamailio after its module start).
const bindGrace = 300 * time.Millisecond

// startListening starts a peer on a port from pick and waits until addr(port) accepts TCP
// connections. A free port cannot be reserved: another test may take it before the peer
// binds, and the peer then exits; so a peer that exits before it is ready is started
// again on a new port, up to five times.
func startListening(t testing.TB, name string, pick func(testing.TB) int, build func(port int) *exec.Cmd,
	timeout time.Duration) (int, *exec.Cmd) {
	t.Helper()
	var lastErr error
	for try := 0; try < 5; try++ {
		port := pick(t)
		cmd := build(port)
		_, done := startProcess(t, name+"-"+strconv.Itoa(port), cmd)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		deadline := time.Now().Add(timeout)
		for {
			c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				// Something answers, but it may be whoever took the port, while our peer
				// is failing to bind: a peer that is still running a moment later owns it.
				select {
				case <-done:
				case <-time.After(bindGrace):
					return port, cmd
				}
				break
			}
			lastErr = err
			select {
			case <-done:
			case <-time.After(20 * time.Millisecond):
				if time.Now().Before(deadline) {
					continue
				}
				t.Fatalf("testpeer: %s on %s not ready after %s: %v", name, addr, timeout, err)
			}
			break // exited before it was ready: try another port
		}
	}
	t.Fatalf("testpeer: %s exited before it was ready, five times: %v", name, lastErr)
	return 0, nil
}

// WaitTCP waits until addr accepts TCP connections.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := waitTCP(addr, timeout); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %w", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
