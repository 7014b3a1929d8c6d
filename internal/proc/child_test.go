package proc

import (
	"bufio"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newCommand returns a command for a binary that must be installed (coreutils, sh): a
// missing one fails the test.
func newCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed: %v", name, err)
	}
	return exec.Command(bin, args...)
}

// alive reports whether pid names a process that has not been reaped (a zombie counts).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitGone waits until pid no longer exists; the deadline only bounds a failure (an
// orphan is reaped by init or a subreaper, not by us, so it may linger a moment).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still exists", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	c, err := Start("sleep", newCommand(t, "sleep", "30"), Options{Pdeathsig: syscall.SIGKILL})
	if err != nil {
		t.Fatal(err)
	}
	pid := c.PID()
	if c.Name() != "sleep" || !alive(pid) {
		t.Fatalf("child %q pid %d not running", c.Name(), pid)
	}
	if pgid, err := syscall.Getpgid(pid); err != nil || pgid != pid {
		t.Fatalf("pgid of %d = %d, %v; want its own group", pid, pgid, err)
	}
	c.Stop()
	select {
	case <-c.Done():
	default:
		t.Fatal("Stop returned before the child was reaped")
	}
	if alive(pid) {
		t.Fatalf("pid %d still exists after Stop", pid)
	}
	var exit *exec.ExitError
	if err := c.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
		t.Fatalf("Wait = %v; want killed by SIGTERM", err)
	}
	c.Stop() // safe twice
}

// TestStopKillsGroup starts a shell that ignores SIGTERM and has a child of its own:
// after the grace, Stop kills both through the process group.
func TestStopKillsGroup(t *testing.T) {
	t.Parallel()
	cmd := newCommand(t, "sh", "-c", `trap "" TERM; sleep 30 & echo $!; wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A short grace keeps the test fast; it is configuration, not an assertion.
	c, err := Start("sh", cmd, Options{Grace: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		c.Stop()
		t.Fatalf("no grandchild pid: %v", sc.Err())
	}
	grandchild, err := strconv.Atoi(sc.Text())
	if err != nil {
		c.Stop()
		t.Fatal(err)
	}
	c.Stop()
	var exit *exec.ExitError
	if err := c.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("Wait = %v; want killed by SIGKILL", err)
	}
	if alive(c.PID()) {
		t.Fatalf("pid %d still exists after Stop", c.PID())
	}
	waitGone(t, grandchild)
}

func TestWaitReportsExit(t *testing.T) {
	t.Parallel()
	c, err := Start("sh", newCommand(t, "sh", "-c", "exit 3"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := c.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("Wait = %v; want exit status 3", err)
	}
	c.Stop() // after a child ended by itself: returns at once
}

func TestStartFails(t *testing.T) {
	t.Parallel()
	_, err := Start("nothing", exec.Command("/nonexistent/dsmgw-proc-test"), Options{})
	if err == nil {
		t.Fatal("started a missing binary")
	}
	if !strings.HasPrefix(err.Error(), "start nothing: ") {
		t.Fatalf("error %q does not name the child", err)
	}
}
