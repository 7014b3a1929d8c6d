package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
)

// testConfig is a full configuration for one process on free loopback ports.
func testConfig(t testing.TB, redisAddr string) Config {
	t.Setenv("REDIS_ADDRS", redisAddr)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("DSM_SECRET", "test-secret-0123456789")
	t.Setenv("MGW_SECRET", "mgw-secret-0123456789")
	t.Setenv("USERS_SECRET", "users-secret-0123456789")
	sip := "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
	t.Setenv("SIP_LISTEN_UDP", sip)
	t.Setenv("SIP_LISTEN_TCP", sip)
	base := 30000 + 2*(testpeer.FreePort(t)%5000)
	t.Setenv("MGW_PORT_MIN", strconv.Itoa(base))
	t.Setenv("MGW_PORT_MAX", strconv.Itoa(base+99))
	// Tests run with -race beside other packages' tests on a small machine, where the 1 s
	// default lease saw renewals late enough that a push-to-talk call moved to its own
	// instance again (and its floor restarted idle): no test here is about takeovers.
	t.Setenv("SIP_CALL_LEASE", "10s")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAllRolesServeAndDrain starts one process with every role against a real Redis,
// checks the endpoints each role mounts, then drains as on SIGTERM.
func TestAllRolesServeAndDrain(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	cfg := testConfig(t, r.Addr)
	hard, stopHard := context.WithCancel(context.Background())
	defer stopHard()
	soft, stopSoft := context.WithCancel(hard)
	app, err := Build(hard, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(soft, hard) }()
	base := "http://" + app.Addr().String()

	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := get(t, base+"/readyz")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz %d %q", code, body)
	}
	code, body := get(t, base+"/session")
	var sess struct{ Client, Token string }
	if code != 200 || json.Unmarshal([]byte(body), &sess) != nil || sess.Client == "" || sess.Token == "" {
		t.Fatalf("/session %d %q", code, body)
	}
	if code, body := get(t, base+"/dsm/schema.json"); code != 200 || !strings.Contains(body, `"mgw_url"`) {
		t.Fatalf("/dsm/schema.json %d", code)
	}
	if code, body := get(t, base+"/"); code != 200 || !strings.Contains(strings.ToLower(body), "<!doctype html>") {
		t.Fatalf("/ %d", code)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics %d", code)
	}
	// The test's Redis starts without notify-keyspace-events: the gateway sets it and
	// says so in /readyz's detail and its metrics.
	for {
		_, body := get(t, base+"/readyz")
		if strings.Contains(body, "keyspace notifications: "+r.Addr) && strings.Contains(body, " ok, set 1 times") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz detail without the keyspace setting applied: %q", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, `dsm_keyspace_notifications{node="`+r.Addr+`"} 1`) {
		t.Fatalf("/metrics without dsm_keyspace_notifications 1 for %s", r.Addr)
	}
	// The media gateway API is mounted and guarded by its secret.
	if code, _ := get(t, base+"/v1/terminations"); code != http.StatusUnauthorized {
		t.Fatalf("/v1/terminations without secret: %d", code)
	}
	if code, _ := get(t, base+"/v1/users/ann/register"); code != http.StatusUnauthorized {
		t.Fatalf("/v1/users without secret: %d", code)
	}

	// NOTIFYs reach the conference subscriptions: one for no known dialog gets 481, not
	// the 405 of an unrouted method.
	if got := sipRoundTrip(t, cfg.SIPListenUDP, "NOTIFY"); !strings.HasPrefix(got, "SIP/2.0 481") {
		t.Fatalf("NOTIFY answered %q", got)
	}

	stopSoft() // SIGTERM
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		var buf strings.Builder
		_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
		t.Fatalf("gateway did not stop after the drain; goroutines:\n%s", buf.String())
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]map[string]string{
		"unknown role":       {"GATEWAY_ROLES": "web,sbc", "DSM_SECRET": "0123456789abcdef"},
		"no dsm secret":      {"GATEWAY_ROLES": "bridge"},
		"no mgw secret":      {"GATEWAY_ROLES": "mediagw"},
		"asadapter alone":    {"GATEWAY_ROLES": "asadapter", "MGW_SECRET": "0123456789abcdef", "USERS_SECRET": "0123456789abcdef"},
		"bad duration":       {"GATEWAY_ROLES": "bridge", "DSM_SECRET": "0123456789abcdef", "DSM_TOKEN_TTL": "soon"},
		"asadapter no users": {"GATEWAY_ROLES": "asadapter,mediagw", "MGW_SECRET": "0123456789abcdef"},
	}
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"GATEWAY_ROLES", "DSM_SECRET", "MGW_SECRET", "USERS_SECRET", "MGW_URL", "DSM_TOKEN_TTL"} {
				t.Setenv(k, env[k])
			}
			if _, err := LoadConfig(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// sipRoundTrip sends one out-of-dialog request over UDP and returns the first line of the
// final answer.
func sipRoundTrip(t *testing.T, addr, method string) string {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg := method + " sip:dsmgw@" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK-gwtest1;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:conf1@example.net>;tag=abc\r\n" +
		"To: <sip:dave@example.net>;tag=def\r\n" +
		"Call-ID: gwtest-1@example.net\r\n" +
		"CSeq: 1 " + method + "\r\n" +
		"Contact: <sip:conf1@" + local + ">\r\n" +
		"Event: conference\r\nSubscription-State: active;expires=60\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no answer to %s: %v", method, err)
		}
		line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
		if !strings.HasPrefix(line, "SIP/2.0 1") {
			return line
		}
	}
}

// testLog is the log of a test's gateway (and conference server): discarded, or debug
// lines on stderr when DSMGW_TEST_LOG is set.
func testLog() *slog.Logger {
	if os.Getenv("DSMGW_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// serveApp builds and runs a gateway of cfg on l, stops it when the test ends, and
// returns once its /readyz answers 200 (a failure deadline of 15 s).
func serveApp(t testing.TB, cfg Config, log *slog.Logger, l net.Listener) *App {
	t.Helper()
	hard, stopHard := context.WithCancel(context.Background())
	soft, stopSoft := context.WithCancel(hard)
	app, err := Build(hard, cfg, log, WithListener(l))
	if err != nil {
		stopHard()
		t.Fatal(err)
	}
	appDone := make(chan error, 1)
	go func() { appDone <- app.Run(soft, hard) }()
	t.Cleanup(func() { stopSoft(); <-appDone; stopHard() })
	base := "http://" + l.Addr().String()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if code, _ := get(t, base+"/readyz"); code == 200 {
			return app
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready")
		}
	}
}
