package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// listenEnv makes the test binary a child that listens on the TCP port it names, or exits
// with status 1 when the port is taken, as redis-server does.
const listenEnv = "PROC_TEST_LISTEN_PORT"

func TestMain(m *testing.M) {
	if p := os.Getenv(listenEnv); p != "" {
		os.Exit(listenChild(p))
	}
	os.Exit(m.Run())
}

func listenChild(port string) int {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	return 0
}

// listenCmd re-executes the test binary as a child listening on port.
func listenCmd(t *testing.T, port int) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), listenEnv+"="+strconv.Itoa(port))
	return cmd
}

// A child whose port was taken between its pick and its bind exits; StartListening
// starts it again on another port, even though the taken port answers.
func TestStartListeningRetriesATakenPort(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pick := func() (int, error) {
		picks++
		if picks == 1 {
			return busy, nil
		}
		return FreePort()
	}
	port, c, err := StartListening(context.Background(), "listener", pick, func(port int) (*exec.Cmd, Options, error) {
		return listenCmd(t, port), Options{Pdeathsig: syscall.SIGKILL}, nil
	}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if port == busy || picks != 2 {
		t.Fatalf("port %d after %d picks (busy %d)", port, picks, busy)
	}
	if !strings.HasPrefix(c.Name(), "listener-") {
		t.Fatalf("child named %q", c.Name())
	}
	if err := WaitTCP("127.0.0.1:"+strconv.Itoa(port), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// When every attempt's port is taken, StartListening gives up and says why.
func TestStartListeningGivesUp(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	_, _, err = StartListening(context.Background(), "listener", func() (int, error) { return busy, nil },
		func(port int) (*exec.Cmd, Options, error) { return listenCmd(t, port), Options{}, nil }, 30*time.Second)
	if !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v; want ErrExited", err)
	}
}

func TestGroupStopsInReverse(t *testing.T) {
	t.Parallel()
	var g Group
	for _, name := range []string{"first", "second", "third"} {
		if _, err := g.Start(name, newCommand(t, "sleep", "30"), Options{Pdeathsig: syscall.SIGKILL}); err != nil {
			g.Stop(nil)
			t.Fatal(err)
		}
	}
	var order []string
	g.Stop(func(c *Child) {
		select {
		case <-c.Done():
		default:
			t.Errorf("%s not reaped when reported stopped", c.Name())
		}
		order = append(order, c.Name())
	})
	if got := strings.Join(order, ","); got != "third,second,first" {
		t.Fatalf("stopped %s", got)
	}
	g.Stop(nil) // empty now: nothing to do
}

func TestLogFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "child.log")
	c, err := Start("sh", newCommand(t, "sh", "-c", "echo out; echo err >&2"), Options{LogFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, "out\n") || !strings.Contains(got, "err\n") {
		t.Fatalf("log %q", got)
	}
}
