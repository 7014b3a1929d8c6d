package proc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// freePortAttempts bounds FreePort's search: most ports outside the ephemeral range are
// free on a test machine, so a few attempts suffice; 50 only guards against a machine
// crowded by other engineers' tests.
const freePortAttempts = 50

// minPortSpan is the smallest span of ports above the ephemeral range FreePort draws
// from; below it, FreePort lets the kernel pick.
const minPortSpan = 1024

// FreePort returns a loopback port that was free for both TCP and UDP when it was asked
// for, for a child process that is told its port on the command line (redis-server,
// sipp). Peers such as sipp listen on the same number for both transports. The port is
// released before FreePort returns, so another process may take it first; the child's
// start then fails and says so.
//
// The port is drawn at random above the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 by default): every socket bound to port 0
// anywhere on the machine (each test's listeners, each outgoing connection) gets its
// port from the ephemeral range, so a port picked by the kernel could be handed to one
// of them between FreePort's check and the child's bind; a port above the range can
// only be taken by another caller of FreePort, which draws at random too.
func FreePort() (int, error) {
	lo, hi := portsAboveEphemeral()
	var lastErr error = ErrNoFreePort
	for range freePortAttempts {
		p := 0
		if hi-lo+1 >= minPortSpan {
			p = lo + rand.IntN(hi-lo+1)
		}
		p, err := probePort(p)
		if err == nil {
			return p, nil
		}
		lastErr = err
	}
	return 0, fmt.Errorf("free port after %d attempts: %w (last: %v)", freePortAttempts, ErrNoFreePort, lastErr)
}

// probePort binds port p (0: the kernel picks) for UDP and then TCP on loopback and
// releases both, returning the port. It holds syscall.ForkLock for reading meanwhile:
// a child forked by this process in that moment (a test beside it starting a peer)
// would hold copies of the probe's sockets until its exec, and the port would still be
// taken, for a moment, when FreePort returns it. (On Linux the net package makes its
// sockets close-on-exec atomically and takes no ForkLock itself, so this cannot
// deadlock.)
func probePort(p int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return 0, err
	}
	defer u.Close()
	p = u.LocalAddr().(*net.UDPAddr).Port
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return 0, err
	}
	l.Close()
	return p, nil
}

// portsAboveEphemeral returns the ports between the top of the kernel's ephemeral range
// and 65535 (an empty span when the range cannot be read).
func portsAboveEphemeral() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 1, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 1, 0
	}
	top, err := strconv.Atoi(f[1])
	if err != nil {
		return 1, 0
	}
	return top + 1, 65535
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
