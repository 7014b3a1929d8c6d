package proc

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// DefaultGrace is how long Stop waits after SIGTERM before it sends SIGKILL. The tools'
// children (redis-server, sipp, Kamailio, baresip, gateway instances) exit within
// milliseconds of SIGTERM on loopback, a gateway after draining its connections; 3 s
// leaves room for a loaded machine without letting a hung child stall the tool.
const DefaultGrace = 3 * time.Second

// Options tune Start. The zero value starts a child that outlives a crashed parent and
// gets DefaultGrace to stop.
type Options struct {
	// Pdeathsig, if not zero, is the signal the kernel sends the child when the parent
	// dies without stopping it (killed, or interrupted from a terminal: the child is in
	// its own process group, so a terminal's ^C no longer reaches it). The kernel sends it
	// when the thread that started the child ends; Go ends threads only when a goroutine
	// locked to one exits, which the tools do not do.
	Pdeathsig syscall.Signal
	// Grace is how long Stop waits after SIGTERM before SIGKILL; DefaultGrace if zero.
	Grace time.Duration
	// LogFile, if not empty, is created (truncated if it exists) and receives the
	// child's standard output and error, unless the caller set cmd.Stdout or cmd.Stderr
	// itself: a child's start-up banner and warnings stay out of a tool's report, and a
	// test can show the tail when it fails.
	LogFile string
}

// Child is a process started by Start. It runs in its own process group, so Stop reaches
// whatever it started in turn (a shell's children, a server's workers), and it is only
// ever signalled through its own PID: the tools never kill by name, which could hit
// another engineer's processes on a shared machine.
type Child struct {
	name  string
	cmd   *exec.Cmd
	grace time.Duration
	done  chan struct{}
	err   error // how the child ended; written before done is closed
}

// Start starts cmd, prepared by the caller (arguments, environment, directory, output
// and pipes), in a process group of its own and reaps it when it exits. name is used in
// errors. The caller must not call cmd.Wait: Child.Wait and Child.Done report the exit.
func Start(name string, cmd *exec.Cmd, o Options) (*Child, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = o.Pdeathsig
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	if o.LogFile != "" {
		logf, err := os.Create(o.LogFile)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		defer logf.Close() // the child holds its own descriptor once started
		if cmd.Stdout == nil {
			cmd.Stdout = logf
		}
		if cmd.Stderr == nil {
			cmd.Stderr = logf
		}
	}
	// The tools print this error as it is; the name says which child failed.
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &Child{name: name, cmd: cmd, grace: o.Grace, done: make(chan struct{})}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// Name returns the name the child was started with.
func (c *Child) Name() string { return c.name }

// PID returns the child's process ID, which is also its process group ID.
func (c *Child) PID() int { return c.cmd.Process.Pid }

// Done is closed once the child has exited and been reaped.
func (c *Child) Done() <-chan struct{} { return c.done }

// Wait blocks until the child has exited and returns how it ended: nil for exit status
// 0, an *exec.ExitError otherwise (as exec.Cmd.Wait, which it replaces).
func (c *Child) Wait() error {
	<-c.done
	return c.err
}

// Stop sends SIGTERM to the child's process group, then SIGKILL to the group if the
// child has not exited after the grace period, and returns once the child is reaped.
// It is safe to call twice, concurrently, and after the child exited by itself.
func (c *Child) Stop() {
	select {
	case <-c.done:
		return
	default:
	}
	// Negative PID: the whole group. An error means the group is already gone.
	_ = syscall.Kill(-c.PID(), syscall.SIGTERM)
	t := time.NewTimer(c.grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = syscall.Kill(-c.PID(), syscall.SIGKILL)
		<-c.done
	}
}
