package testpeer

import (
	"bytes"
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
	// by RTPEcho. 0 picks a free one (sipp also binds MediaPort+2 for video).
	MediaPort int
	// Args are extra arguments appended as given (-m, -r, -l, -d, -key ...).
	Args []string
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

// sippStartAttempts is how often StartSipp starts sipp again on new ports after it could
// not bind one: a port picked free can be taken by another test before sipp binds it,
// which is rare, so five attempts only fail on a machine whose ports are exhausted.
const sippStartAttempts = 5

// StartSipp starts sipp on 127.0.0.1 with a private control port (-cp; by default sipp
// opens 0.0.0.0:8888, which collides between parallel tests) and 4 MiB socket buffers
// (-buff_size; without it sipp overflows UDP buffers under load). Logs and traces go to
// a temporary directory, and the process is stopped by PID when the test ends.
//
// StartSipp returns once sipp itself holds its ports (or, for a client, has already
// ended): a server scenario is ready then. A port picked free a moment before can be
// taken by another test first; sipp then exits at once ("Unable to bind"), and StartSipp
// starts it again on new ports (the ones it picked: a port the caller chose stays).
func StartSipp(t testing.TB, opts SippOptions) *Sipp {
	t.Helper()
	bin := Need(t, "sipp")
	if opts.Scenario == "" {
		opts.Scenario = "uas"
	}
	if opts.Transport == "" {
		opts.Transport = "u1"
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	pickPort, pickMedia := opts.Port == 0, opts.MediaPort == 0
	var lastErr error
	for range sippStartAttempts {
		o := opts
		if pickPort {
			o.Port = FreeUDPPort(t)
		}
		if pickMedia {
			o.MediaPort = freeMediaPort(t)
		}
		s, err := startSipp(t, bin, o)
		if err == nil {
			return s
		}
		if !errors.Is(err, errSippBind) {
			t.Fatalf("testpeer: %v", err)
		}
		lastErr = err
		t.Logf("testpeer: %v; starting sipp again", err)
	}
	t.Fatalf("testpeer: sipp, %d times: %v", sippStartAttempts, lastErr)
	return nil
}

// startSipp starts one sipp with opts (its ports chosen) and waits until it holds them.
// On an error the process has ended and nothing is left to clean up.
func startSipp(t testing.TB, bin string, opts SippOptions) (*Sipp, error) {
	dir := t.TempDir()
	ctrl := FreeUDPPort(t)
	args := []string{"-i", opts.Host, "-p", strconv.Itoa(opts.Port), "-t", opts.Transport,
		"-cp", strconv.Itoa(ctrl), "-buff_size", "4194304", "-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		"-trace_msg", "-message_file", filepath.Join(dir, "messages.log")}
	if strings.HasSuffix(opts.Scenario, ".xml") {
		args = append(args, "-sf", opts.Scenario)
	} else {
		args = append(args, "-sn", opts.Scenario)
	}
	args = append(args, "-mi", opts.Host, "-mp", strconv.Itoa(opts.MediaPort))
	if opts.RTPEcho {
		args = append(args, "-rtp_echo")
	}
	args = append(args, opts.Args...)
	if opts.Remote != "" {
		args = append(args, opts.Remote)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	logf := filepath.Join(dir, "sipp.log")
	child, err := proc.Start("sipp", cmd, peerOptions(logf))
	if err != nil {
		return nil, err
	}
	s := &Sipp{Addr: net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port)), Port: opts.Port, MediaPort: opts.MediaPort,
		PID: child.PID(), Dir: dir, child: child}
	// What sipp binds at its start: the control socket (UDP), the SIP socket (UDP, or a
	// TCP listener for a server; a TCP client connects from a port of the kernel's), the
	// audio and video media sockets.
	ports := []boundPort{{"udp", ctrl, false}}
	switch {
	case opts.Transport[0] == 'u':
		ports = append(ports, boundPort{"udp", opts.Port, false})
	case opts.Remote == "":
		ports = append(ports, boundPort{"tcp", opts.Port, true})
	}
	ports = append(ports, boundPort{"udp", opts.MediaPort, false}, boundPort{"udp", opts.MediaPort + 2, false})
	err = waitBound(child, ports, sippReadyTimeout)
	switch {
	case err == nil:
	case errors.Is(err, proc.ErrExited):
		b, _ := os.ReadFile(logf)
		if bytes.Contains(b, []byte("Unable to bind")) {
			return nil, fmt.Errorf("sipp (pid %d) on port %d: %w: %s", s.PID, opts.Port, errSippBind, lastLine(b))
		}
		if opts.Remote == "" {
			logTail(t, "sipp (pid "+strconv.Itoa(s.PID)+") sipp.log", logf)
			return nil, fmt.Errorf("sipp (pid %d): %w", s.PID, err)
		}
		// A client that already ended: its exit status tells the test how its calls went.
	default:
		child.Stop()
		logTail(t, "sipp (pid "+strconv.Itoa(s.PID)+") sipp.log", logf)
		return nil, fmt.Errorf("sipp (pid %d): %w", s.PID, err)
	}
	stopOnCleanup(t, child, logf, filepath.Join(dir, "errors.log"), filepath.Join(dir, "messages.log"))
	return s, nil
}

// sippReadyTimeout bounds the wait for sipp's sockets: it binds them within milliseconds
// of its start; 10 s covers a loaded machine.
const sippReadyTimeout = 10 * time.Second

// lastLine returns the last non-empty line of b.
func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
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
