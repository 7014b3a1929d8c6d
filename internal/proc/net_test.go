package proc

import (
	"net"
	"strconv"
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

func TestWaitTCPNotListening(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	if err := WaitTCP(addr, 100*time.Millisecond); err == nil {
		t.Fatalf("WaitTCP(%s) succeeded with nothing listening", addr)
	}
}
