package testpeer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/proc"
)

// Which process holds a port. A UDP server cannot be probed like a TCP one, and a port
// that something holds may be held by whoever took it first while our peer fails to
// bind it: the kernel's socket tables (/proc/net/udp, /proc/net/tcp) give each bound
// socket's inode, and a process's descriptors (/proc/<pid>/fd) name the sockets it holds.

// boundPort is a port a peer binds: on UDP, or a TCP listener.
type boundPort struct {
	proto  string // "udp" or "tcp"
	port   int
	listen bool // TCP: only a listening socket counts
}

// tcpListen is the state of a listening TCP socket in /proc/net/tcp.
const tcpListen = "0A"

// boundPollEvery is how often waitBound looks at the tables: a peer binds its sockets
// within milliseconds of its start.
const boundPollEvery = 10 * time.Millisecond

// waitBound waits until c holds every one of ports, c exits (an error wrapping
// proc.ErrExited) or timeout passes.
func waitBound(c *proc.Child, ports []boundPort, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		missing := -1
		if socks := socketsOf(c.PID()); socks != nil {
			for _, p := range ports {
				if !holds(socks, p) {
					missing = p.port
					break
				}
			}
			if missing < 0 {
				return nil
			}
		}
		select {
		case <-c.Done():
			return fmt.Errorf("%s (pid %d): %w: %v", c.Name(), c.PID(), proc.ErrExited, c.Wait())
		case <-deadline.C:
			return fmt.Errorf("%s (pid %d) holds no socket on port %d after %s", c.Name(), c.PID(), missing, timeout)
		case <-time.After(boundPollEvery):
		}
	}
}

// socketsOf returns the inodes of the sockets process pid holds (nil when it is gone).
func socketsOf(pid int) map[string]bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			out[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return out
}

// holds reports whether one of socks (inodes) is bound to p, on IPv4 or IPv6.
func holds(socks map[string]bool, p boundPort) bool {
	for _, table := range []string{"/proc/net/" + p.proto, "/proc/net/" + p.proto + "6"} {
		for _, ino := range inodesOn(table, p) {
			if socks[ino] {
				return true
			}
		}
	}
	return false
}

// inodesOn returns the inodes of the sockets a kernel socket table (proc(5): local
// address in field 1, state in field 3, inode in field 9) lists as bound to p.
func inodesOn(table string, p boundPort) []string {
	fh, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer fh.Close()
	want := fmt.Sprintf(":%04X", p.port)
	var out []string
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || !strings.HasSuffix(f[1], want) || (p.listen && f[3] != tcpListen) {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// freeMediaPort returns an even UDP port p with p, p+1 and p+2 free (sipp's audio RTP
// and RTCP and its video port), drawn as FreePort draws: above the kernel's ephemeral
// range, which any socket bound to port 0 may take at any moment.
func freeMediaPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p, err := proc.FreePort()
		if err != nil {
			t.Fatalf("testpeer: media port: %v", err)
		}
		p &^= 1
		if p+2 > 65535 {
			continue
		}
		ok := true
		for _, q := range []int{p, p + 1, p + 2} {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: q})
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatalf("testpeer: no free media port")
	return 0
}
