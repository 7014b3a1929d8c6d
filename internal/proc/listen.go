package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// startAttempts bounds StartListening: a port taken between its pick and the child's bind
// is rare, so five attempts only fail on a machine whose ports are exhausted.
const startAttempts = 5

// bindGrace is how long a child must keep running after its port answers before it is
// taken to own the port: one that could not bind exits within milliseconds (Redis at
// once, Kamailio after its module start), while whoever took the port answers as well.
const bindGrace = 300 * time.Millisecond

// StartListening starts a child that listens on a port picked for it, and returns once
// the port accepts TCP connections and the child is still running bindGrace later. A free
// port cannot be reserved for a child: another process may take it before the child
// binds, and the child then exits; so a child that exits before it is ready is started
// again on a new port from pick, up to five times. build returns the command for a port;
// each attempt is named name-<port>. timeout bounds each attempt's wait, and ctx all of
// them. On an error every child it started has been stopped.
func StartListening(ctx context.Context, name string, pick func() (int, error),
	build func(port int) (*exec.Cmd, Options, error), timeout time.Duration) (int, *Child, error) {
	var lastErr error
	for range startAttempts {
		port, err := pick()
		if err != nil {
			return 0, nil, fmt.Errorf("start %s: %w", name, err)
		}
		cmd, o, err := build(port)
		if err != nil {
			return 0, nil, fmt.Errorf("start %s: %w", name, err)
		}
		c, err := Start(name+"-"+strconv.Itoa(port), cmd, o)
		if err != nil {
			return 0, nil, err
		}
		err = waitListening(ctx, c, "127.0.0.1:"+strconv.Itoa(port), timeout)
		if err == nil {
			return port, c, nil
		}
		c.Stop()
		if !errors.Is(err, ErrExited) {
			return 0, nil, err
		}
		lastErr = err
	}
	return 0, nil, fmt.Errorf("start %s, %d times: %w", name, startAttempts, lastErr)
}

// waitListening waits until addr accepts a TCP connection while c keeps running. It
// returns an error wrapping ErrExited if c exits first.
func waitListening(ctx context.Context, c *Child, addr string, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, waitTCPDial)
		if err == nil {
			conn.Close()
			// Something answers, but it may be whoever took the port while our child is
			// failing to bind. The kernel's socket tables say who holds it; when they
			// cannot (another user's processes), a child still running a moment later
			// owns it.
			switch c.holdsTCP(addr) {
			case holderUs:
				return nil
			case holderUnknown:
				select {
				case <-c.Done():
					return fmt.Errorf("%s on %s: %w: %v", c.Name(), addr, ErrExited, c.Wait())
				case <-time.After(bindGrace):
					return nil
				}
			}
			err = fmt.Errorf("%s is held by another process", addr)
		}
		select {
		case <-c.Done():
			return fmt.Errorf("%s on %s: %w: %v", c.Name(), addr, ErrExited, c.Wait())
		case <-deadline.C:
			return fmt.Errorf("%s on %s not ready after %s: %w", c.Name(), addr, timeout, err)
		case <-ctx.Done():
			return fmt.Errorf("%s on %s: %w", c.Name(), addr, ctx.Err())
		case <-time.After(waitTCPPoll):
		}
	}
}

// holder says whether a child holds a port, as far as the socket tables tell.
type holder int

const (
	holderUnknown holder = iota // no holder found (not readable, or not bound yet)
	holderUs                    // the child or a process of its group
	holderOther                 // only processes outside the child's group
)

// holdsTCP tells whether the child's process group holds the TCP port of addr.
func (c *Child) holdsTCP(addr string) holder {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return holderUnknown
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return holderUnknown
	}
	hs, err := PortHolders("tcp", port)
	if err != nil || len(hs) == 0 {
		return holderUnknown
	}
	for _, h := range hs {
		// The child is its group's leader (Start sets Setpgid), so its PID is the group.
		if pg, err := syscall.Getpgid(h.PID); h.PID == c.PID() || (err == nil && pg == c.PID()) {
			return holderUs
		}
	}
	return holderOther
}
