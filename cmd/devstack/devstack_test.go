package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"dsmgw/internal/proc"
)

// freeAddr returns a loopback address free for UDP and TCP.
func freeAddr(t *testing.T) string {
	t.Helper()
	p, err := proc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(p)
}

// syncBuffer is an io.Writer safe for the stack's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testOptions are devstack's options and gateway environment on free ports, so that the
// test runs beside other tests and a system Kamailio.
func testOptions(t *testing.T, out io.Writer) options {
	t.Helper()
	http, sip := freeAddr(t), freeAddr(t)
	t.Setenv("HTTP_ADDR", http)
	t.Setenv("MGW_PUBLIC_WS_URL", "ws://"+http)
	t.Setenv("SIP_LISTEN_UDP", sip)
	t.Setenv("SIP_LISTEN_TCP", sip)
	t.Setenv("REDIS_ADDRS", "") // set by devstack to its own Redis
	os.Unsetenv("REDIS_ADDRS")
	return options{dir: t.TempDir(), sip: true, cscf: freeAddr(t), phone: freeAddr(t), conf: freeAddr(t), out: out}
}

// TestDevstack runs the stack as a user does and checks what it claims: it prints the
// page, Redis and the logs, bob is registered (devstack asked Kamailio), the gateway is
// ready, and the logs stay after it stopped.
func TestDevstack(t *testing.T) {
	var out syncBuffer
	o := testOptions(t, &out)
	hard, stopHard := context.WithCancel(context.Background())
	defer stopHard()
	soft, stopSoft := context.WithCancel(hard)
	done := make(chan error, 1)
	go func() { done <- run(soft, hard, o) }()
	deadline := time.After(60 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops everything") {
		select {
		case err := <-done:
			t.Fatalf("devstack ended: %v\n%s", err, out.String())
		case <-deadline:
			t.Fatalf("devstack not ready:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	got := out.String()
	t.Logf("devstack printed:\n%s", got)
	for _, want := range []string{
		"page        http://" + os.Getenv("HTTP_ADDR") + "/",
		"redis       127.0.0.1:",
		"bob         baresip on " + o.phone + ", registered: sip:bob",
		"conference  imsdemo on " + o.conf,
		"logs        " + o.dir + ": ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
	res, err := http.Get("http://" + os.Getenv("HTTP_ADDR") + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(string(body), "ready") {
		t.Fatalf("/readyz %d %q", res.StatusCode, body)
	}
	stopSoft()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("devstack: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("devstack did not stop")
	}
	if !strings.Contains(out.String(), "logs kept in "+o.dir) {
		t.Fatalf("no word of the kept logs:\n%s", out.String())
	}
	for _, f := range []string{"gateway.log", "kamailio.log", "baresip.log", "imsdemo.log"} {
		if st, err := os.Stat(filepath.Join(o.dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("log %s after exit: %v", f, err)
		}
	}
}

// A taken port stops devstack before it starts anything, naming the port, its holder
// and the flag that moves it.
func TestPortTaken(t *testing.T) {
	o := testOptions(t, io.Discard)
	c, err := net.ListenPacket("udp", o.cscf)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = run(context.Background(), context.Background(), o)
	if err == nil {
		t.Fatal("devstack started with its CSCF port taken")
	}
	msg := err.Error()
	for _, want := range []string{o.cscf + "/udp (Kamailio, the CSCF)", "held by", "pid " + strconv.Itoa(os.Getpid()), "-cscf"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if ents, _ := os.ReadDir(o.dir); len(ents) != 0 {
		t.Errorf("something started: %v", ents)
	}
}

// The holder of a port is named, and Kamailio's gets the fix for Debian's service.
func TestDescribeTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	line := describeTaken(port{proto: "tcp", addr: l.Addr().String(), what: "x", fix: "pass -x"}, os.ErrExist)
	if !strings.Contains(line, "held by ") || !strings.Contains(line, "pass -x") {
		t.Fatalf("%q", line)
	}
}
