package proc

import (
	"fmt"
	"net"
	"strconv"
	"time"
)

// freePortAttempts bounds FreePort's search: a port the kernel hands out free for UDP is
// nearly always free for TCP as well, so a few attempts suffice; 50 only guards against
// a machine whose ephemeral range is crowded by other engineers' tests.
const freePortAttempts = 50

// FreePort returns a loopback port that was free for both TCP and UDP when it was asked
// for, for a child process that is told its port on the command line (redis-server,
// sipp). Peers such as sipp listen on the same number for both transports. The port is
// released before FreePort returns, so another process may take it first; the child's
// start then fails and says so.
func FreePort() (int, error) {
	var lastErr error = ErrNoFreePort
	for range freePortAttempts {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("free port: %w", err)
		}
		p := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		u.Close()
		if err == nil {
			l.Close()
			return p, nil
		}
		lastErr = err
	}
	return 0, fmt.Errorf("free port after %d attempts: %w (last: %v)", freePortAttempts, ErrNoFreePort, lastErr)
}

// waitTCPDial bounds each connection attempt of WaitTCP: a listener on loopback answers
// at once, and a dial that hangs (a full backlog) is retried instead of eating the
// whole timeout.
const waitTCPDial = 200 * time.Millisecond

// waitTCPPoll is the pause between attempts: short, since a loopback dial costs
// microseconds and a child usually listens within milliseconds of its start.
const waitTCPPoll = 20 * time.Millisecond

// WaitTCP returns once addr accepts a TCP connection, or an error after timeout. The
// tools use it to wait for a child they started to be ready.
func WaitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, waitTCPDial)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: %w", addr, err)
		}
		time.Sleep(waitTCPPoll)
	}
}
