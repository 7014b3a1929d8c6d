package proc

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Holder is a process holding a socket bound to a port.
type Holder struct {
	PID  int
	Name string // its command name (/proc/<pid>/comm)
}

// String is "name (pid N)".
func (h Holder) String() string { return fmt.Sprintf("%s (pid %d)", h.Name, h.PID) }

// PortHolders returns the processes holding a socket bound to port for proto ("tcp" or
// "udp", IPv4 and IPv6) on any address, from /proc/net and /proc/<pid>/fd. A tool that
// finds its port taken names the holder, so that its user knows what to stop (Debian's
// kamailio package, for one, starts a system service on 5060). Processes of other users
// are found only when the caller may read their fd folders (root may); an empty answer
// with a nil error means none was found.
func PortHolders(proto string, port int) ([]Holder, error) {
	var want map[uint64]bool
	for _, v := range []string{"", "6"} {
		b, err := os.ReadFile("/proc/net/" + proto + v)
		if err != nil {
			if v == "6" && os.IsNotExist(err) {
				continue // no IPv6 on this machine
			}
			return nil, fmt.Errorf("port holders: %w", err)
		}
		inodes, err := ParseProcNet(b, port, proto == "tcp")
		if err != nil {
			return nil, err
		}
		for _, i := range inodes {
			if want == nil {
				want = map[uint64]bool{}
			}
			want[i] = true
		}
	}
	if len(want) == 0 {
		return nil, nil
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	seen := map[int]bool{}
	var out []Holder
	for _, fd := range fds {
		l, err := os.Readlink(fd)
		if err != nil {
			continue
		}
		ino, ok := strings.CutPrefix(l, "socket:[")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64)
		if err != nil || !want[n] {
			continue
		}
		pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
		if seen[pid] {
			continue
		}
		seen[pid] = true
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		out = append(out, Holder{PID: pid, Name: strings.TrimSpace(string(comm))})
	}
	return out, nil
}

// tcpListen is the state of a listening TCP socket in /proc/net/tcp (TCP_LISTEN).
const tcpListen = "0A"

// ParseProcNet returns the inodes of the sockets bound to port in a /proc/net/{tcp,udp}[6]
// table (proc(5)): for TCP, listening sockets only (a connection's local port is not a
// bound port). The header line is skipped.
func ParseProcNet(b []byte, port int, tcp bool) ([]uint64, error) {
	var out []uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 1024), 64*1024)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		if len(f) < 10 {
			return nil, fmt.Errorf("%w: /proc/net line %q has %d fields, want at least 10", ErrMalformed, sc.Text(), len(f))
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			return nil, fmt.Errorf("%w: /proc/net local address %q", ErrMalformed, f[1])
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil {
			return nil, fmt.Errorf("%w: /proc/net local port %q", ErrMalformed, hexPort)
		}
		if int(p) != port || (tcp && f[3] != tcpListen) {
			continue
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: /proc/net inode %q", ErrMalformed, f[9])
		}
		out = append(out, ino)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: /proc/net: %v", ErrMalformed, err)
	}
	return out, nil
}
