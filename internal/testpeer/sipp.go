package testpeer

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/proc"
)

// SippOptions configures one sipp process.
type SippOptions struct {
	// Scenario is a built-in scenario name ("uas", "uac", "regexp", ...: passed with
	// -sn) or the path of an XML scenario file (anything ending in .xml: passed with -sf).
	// Default "uas".
	Scenario string
	// Remote is the target host:port of a client scenario (sipp's positional argument);
	// empty for a server.
	Remote string
	// Transport is sipp's -t value ("u1" UDP one socket, "t1" TCP ...). Default "u1".
	Transport string
	// Host is the local address sipp binds and advertises (-i, -mi). Default 127.0.0.1; a
	// test of a network of namespaces gives its bridge's address.
	Host string
	// Port is the local SIP port (-p). 0 picks a free one.
	Port int
	// RTPEcho makes sipp echo RTP received on MediaPort back to its sender (-rtp_echo).
	RTPEcho bool
	// MediaPort is the media port (-mp) advertised in the built-in scenarios' SDP and used
	// by RTPEcho. 0 with RTPEcho picks a free one (sipp also binds MediaPort+2 for video).
	MediaPort int
	// Args are extra arguments appended as given (-m, -r, -l, -d, -key ...).
	Args []string
	// NoWait skips waiting for the SIP port to be bound (for client scenarios, which
	// start sending at once and may end before a check could see them).
	NoWait bool
}

// Sipp is a running sipp process. Its working directory (trace, error and message
// files) is Dir, a test temporary directory.
type Sipp struct {
	// Addr is the SIP address "127.0.0.1:<Port>".
	Addr      string
	Port      int
	MediaPort int
	PID       int
	Dir       string

	child *proc.Child
}

// StartSipp starts sipp on 127.0.0.1 with a private control port (-cp; by default sipp
// opens 0.0.0.0:8888, which collides between parallel tests) and 4 MiB socket buffers
// (-buff_size; without it sipp overflows UDP buffers under load). Logs and traces go to
// a temporary directory, and the process is stopped by PID when the test ends. A server
// scenario is ready when StartSipp returns.
func StartSipp(t testing.TB, opts SippOptions) *Sipp {
	t.Helper()
	bin := Need(t, "sipp")
	if opts.Scenario == "" {
		opts.Scenario = "uas"
	}
	if opts.Transport == "" {
		opts.Transport = "u1"
	}
	if opts.Port == 0 {
		opts.Port = FreeUDPPort(t)
	}
	if opts.RTPEcho && opts.MediaPort == 0 {
		opts.MediaPort = freeMediaPort(t)
	}
	dir := t.TempDir()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	args := []string{"-i", opts.Host, "-p", strconv.Itoa(opts.Port), "-t", opts.Transport,
		"-cp", strconv.Itoa(FreeUDPPort(t)), "-buff_size", "4194304", "-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log")}
	if strings.HasSuffix(opts.Scenario, ".xml") {
		args = append(args, "-sf", opts.Scenario)
	} else {
		args = append(args, "-sn", opts.Scenario)
	}
	if opts.MediaPort != 0 {
		args = append(args, "-mi", opts.Host, "-mp", strconv.Itoa(opts.MediaPort))
	}
	if opts.RTPEcho {
		args = append(args, "-rtp_echo")
	}
	args = append(args, opts.Args...)
	if opts.Remote != "" {
		args = append(args, opts.Remote)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	child, err := proc.Start("sipp", cmd, peerOptions(filepath.Join(dir, "sipp.log")))
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	s := &Sipp{Addr: net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), Port: opts.Port, MediaPort: opts.MediaPort,
		PID: child.PID(), Dir: dir, child: child}
	stopOnCleanup(t, child, filepath.Join(dir, "sipp.log"), filepath.Join(dir, "errors.log"),
		filepath.Join(dir, "messages.log"))
	if !opts.NoWait {
		ports := []int{opts.Port}
		if opts.RTPEcho {
			ports = append(ports, opts.MediaPort)
		}
		for _, p := range ports {
			if err := waitUDPBound(p, 10*time.Second, child.Done()); err != nil {
				t.Fatalf("testpeer: sipp (pid %d): %v", s.PID, err)
			}
		}
	}
	return s
}

// Wait waits up to timeout for sipp to exit and returns its exit code (0: every call
// succeeded, 1: some failed, 99: ended without calls; see sipp(1)), or -1 if a signal
// ended it.
func (s *Sipp) Wait(timeout time.Duration) (int, error) {
	select {
	case <-s.child.Done():
		var exit *exec.ExitError
		if err := s.child.Wait(); errors.As(err, &exit) {
			return exit.ExitCode(), nil
		} else if err != nil {
			return 0, fmt.Errorf("testpeer: sipp (pid %d): %w", s.PID, err)
		}
		return 0, nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("testpeer: sipp (pid %d) still running after %s", s.PID, timeout)
	}
}

// Done is closed when sipp has exited.
func (s *Sipp) Done() <-chan struct{} { return s.child.Done() }

// freeMediaPort returns an even UDP port p with p and p+2 free (sipp's audio and video
// echo ports).
func freeMediaPort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatalf("testpeer: media port: %v", err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port &^ 1
		c.Close()
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

// waitUDPBound waits until some socket is bound to UDP port (listed in /proc/net/udp),
// because a UDP server cannot be probed like a TCP one.
func waitUDPBound(port int, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		if udpBound(port) {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited before binding udp port %d", port)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("udp port %d not bound after %s", port, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func udpBound(port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 1 && strings.HasSuffix(fields[1], want) {
				fh.Close()
				return true
			}
		}
		fh.Close()
	}
	return false
}
