package proc

import (
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func TestFreePort(t *testing.T) {
	t.Parallel()
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	// Free for both transports (another process could take it meanwhile; on a test
	// machine that is rare enough to investigate if it happens).
	addr := "127.0.0.1:" + strconv.Itoa(p)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	u.Close()
}

func TestWaitTCP(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
	// The timeout is a failure deadline: a listening port answers at once.
	if err := WaitTCP(l.Addr().String(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

// refusedAddr returns a loopback address that refuses TCP connections until the test
// ends. Closing a listener is not enough: the port is then free for anyone, and on a
// machine running other tests a new listener takes it within the wait often enough to
// fail this test (about once in six runs under load). A socket bound to the port but not
// listening answers every SYN with a reset and, lacking SO_REUSEADDR, keeps any other
// socket from binding the port.
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
}

func TestWaitTCPNotListening(t *testing.T) {
	t.Parallel()
	addr := refusedAddr(t)
	if err := WaitTCP(addr, 100*time.Millisecond); err == nil {
		t.Fatalf("WaitTCP(%s) succeeded with nothing listening", addr)
	}
}
