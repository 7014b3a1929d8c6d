// Package testpeer starts real peers for tests (redis-server, a Redis Cluster, sipp,
// Kamailio, baresip) on free loopback ports, waits until they are ready and stops them by
// PID when the test ends. Every helper takes a testing.TB, so each test gets private
// peers and tests can run in parallel. The processes themselves are run by internal/proc
// and Redis by internal/redisrun, which the command-line tools share.
package testpeer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"dsmgw/internal/proc"
)

// FreePort returns a port on 127.0.0.1 that was free a moment ago (proc.FreePort). The
// port is released before it returns, so a peer that starts right after can take it;
// the tiny race with another process is handled where it matters (startListening).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := proc.FreePort()
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	return p
}

// FreeUDPPort returns a port free for both UDP and TCP on 127.0.0.1 (SIP peers listen on
// both). It is FreePort, whose ports are free on both transports; the name says why the
// caller needs that.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	return FreePort(t)
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

// peerOptions are the process options of every peer: the kernel kills the peer if the
// test binary dies first (a -timeout panic runs no cleanups), so no peer outlives its
// test; proc.DefaultGrace (3 s) between SIGTERM and SIGKILL.
func peerOptions(logFile string) proc.Options {
	return proc.Options{Pdeathsig: syscall.SIGKILL, LogFile: logFile}
}

// StartProcess starts cmd through internal/proc (its own process group), logs its output
// to a file in a test temporary directory unless cmd's output is already set, and
// registers a cleanup that stops it by PID and shows the log's tail if the test failed.
func StartProcess(t testing.TB, name string, cmd *exec.Cmd) *proc.Child {
	t.Helper()
	logf := filepath.Join(t.TempDir(), name+".log")
	c, err := proc.Start(name, cmd, peerOptions(logf))
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	stopOnCleanup(t, c, logf)
	return c
}

// stopOnCleanup stops c when the test ends and, if the test failed, logs the tail of each
// of logs.
func stopOnCleanup(t testing.TB, c *proc.Child, logs ...string) {
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			for _, l := range logs {
				logTail(t, c.Name()+" (pid "+strconv.Itoa(c.PID())+") "+filepath.Base(l), l)
			}
		}
	})
}

// logTail logs the last 8,000 bytes of a peer's log file: enough for the error that
// failed the test, short enough to read.
func logTail(t testing.TB, what, path string) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("--- %s tail ---\n%s", what, b)
}

// startListening starts a peer on a port from pick and waits until it accepts TCP
// connections on 127.0.0.1 (proc.StartListening: a peer whose port another test took
// first is started again on a new port). The peer is stopped when the test ends. It
// returns the port, the process and the file of its output.
func startListening(t testing.TB, name string, pick func(testing.TB) int, build func(port int) *exec.Cmd,
	timeout time.Duration) (int, *proc.Child, string) {
	t.Helper()
	dir := t.TempDir()
	var logf string
	port, c, err := proc.StartListening(context.Background(), name, func() (int, error) { return pick(t), nil },
		func(port int) (*exec.Cmd, proc.Options, error) {
			logf = filepath.Join(dir, name+"-"+strconv.Itoa(port)+".log")
			return build(port), peerOptions(logf), nil
		}, timeout)
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	stopOnCleanup(t, c, logf)
	return port, c, logf
}

// WaitTCP waits until addr accepts TCP connections.
func WaitTCP(t testing.TB, addr string, timeout time.Duration) {
	t.Helper()
	if err := proc.WaitTCP(addr, timeout); err != nil {
		t.Fatalf("testpeer: %v", err)
	}
}
