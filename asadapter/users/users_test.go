package users

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"dsmgw/asadapter/internal/siptest"
	"dsmgw/asadapter/sipport"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// usersRig is a Users on a private Redis with its HTTP API served.
type usersRig struct {
	u    *Users
	st   *store.Store
	reg  *prometheus.Registry
	http *httptest.Server
	stop func() // stops Run (as a graceful shutdown would); safe twice
}

const usersTestSecret = "s3cret-for-tests"

func startUsers(t *testing.T, port sipport.Port, cfg Config, redisAddr string) *usersRig {
	t.Helper()
	if redisAddr == "" {
		redisAddr = testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"}).Addr
	}
	rdb := (&testpeer.Redis{Addr: redisAddr}).Client(t)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.New(store.Config{}, rdb, log)
	if err != nil {
		t.Fatal(err)
	}
	// A short XREAD block (200 ms, as in the store's own tests): stop waits for the feed,
	// which notices the end of its context only between reads.
	feed := store.NewFeed(store.FeedConfig{Block: 200 * time.Millisecond}, st, log)
	reg := prometheus.NewRegistry()
	cfg.Secret = usersTestSecret
	if cfg.Instance == "" {
		// Distinct per Users, as the gateway's hostname-pid is per process.
		cfg.Instance = "users-" + newToken(4)
	}
	u, err := New(cfg, port, st, feed, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if ts, ok := port.(*siptest.Port); ok {
		ts.OnNotify(u.HandleNotify)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = feed.Run(ctx); done <- struct{}{} }()
	go func() { _ = u.Run(ctx); done <- struct{}{} }()
	hs := httptest.NewServer(u.HTTPHandler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			<-done
		})
	}
	t.Cleanup(func() {
		hs.Close()
		stop()
	})
	return &usersRig{u: u, st: st, reg: reg, http: hs, stop: stop}
}

// call makes an API request and returns the status and body.
func (r *usersRig) call(t *testing.T, method, path, secret string, body any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		if s, ok := body.(string); ok {
			b = []byte(s)
		}
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.http.URL+path, rd)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitFields polls an object until ok accepts its fields; the deadline is only a failure
// bound.
func (r *usersRig) waitFields(t *testing.T, obj string, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := r.st.Snapshot(context.Background(), obj)
		if err == nil && ok(snap.Fields) {
			return snap.Fields
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached; fields %v (err %v)", obj, what, snap.Fields, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHistory waits until field of obj has taken every value of want, in that order, as
// read from the object's op log. Unlike polling the current fields it cannot miss a state
// that lasted only a moment.
func (r *usersRig) waitHistory(t *testing.T, obj, field string, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var seen []string
		rd, err := r.st.Since(context.Background(), obj, 0)
		if err == nil {
			for _, e := range rd.Log {
				for _, o := range e.Ops {
					if o.Field == field && o.Kind == store.OpSet {
						seen = append(seen, *o.Value)
					}
				}
			}
		}
		i := 0
		for _, v := range seen {
			if i < len(want) && v == want[i] {
				i++
			}
		}
		if i == len(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never went through %v; history %v (err %v)", obj, field, want, seen, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSipp waits for sipp to end and checks that every call of its scenario succeeded
// (20 s is a failure bound, not a timing assertion).
func waitSipp(t *testing.T, s *testpeer.Sipp) {
	t.Helper()
	code, err := s.Wait(20 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("sipp exited with %d (some calls failed)", code)
	}
}

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// waitCounter polls a counter until it reaches at least n.
func waitCounter(t *testing.T, c prometheus.Metric, n float64, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for metricValue(c) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v < %v", what, metricValue(c), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUsersHTTPAPI(t *testing.T) {
	t.Parallel()
	r := startUsers(t, siptest.New(t, ""), Config{}, "")
	good := RegisterRequest{SIPURI: "sip:alice@dsmgw.test", AuthUser: "alice", Password: "pw", Client: "K1"}
	tests := map[string]struct {
		method, path, secret string
		body                 any
		want                 int
		contains             string
	}{
		"no token":           {"POST", "/v1/users/alice/register", "", good, 401, "bearer"},
		"wrong token":        {"POST", "/v1/users/alice/register", "nope", good, 401, "bearer"},
		"not json":           {"POST", "/v1/users/alice/register", usersTestSecret, "{", 400, "body"},
		"unknown field":      {"POST", "/v1/users/alice/register", usersTestSecret, `{"sip_uri":"sip:a@b","client":"K","pw":"x"}`, 400, "unknown field"},
		"bad sip uri":        {"POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{SIPURI: "mailto:a@b", Client: "K"}, 400, "sip_uri"},
		"bad user":           {"POST", "/v1/users/al%20ice/register", usersTestSecret, good, 400, "user name"},
		"no client":          {"POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{SIPURI: "sip:a@b"}, 400, "client"},
		"password no user":   {"POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{SIPURI: "sip:a@b", Client: "K", Password: "x"}, 400, "auth_user"},
		"ttl too long":       {"POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{SIPURI: "sip:a@b", Client: "K", TTLSeconds: 1e6}, 400, "ttl"},
		"body too large":     {"POST", "/v1/users/alice/register", usersTestSecret, RegisterRequest{SIPURI: "sip:a@b", Client: "K", Display: strings.Repeat("x", 5000)}, 400, ""},
		"delete unknown":     {"DELETE", "/v1/users/nobody/register", usersTestSecret, nil, 404, "no registration"},
		"get unknown":        {"GET", "/v1/users/nobody/register", usersTestSecret, nil, 404, "no registration"},
		"method not allowed": {"PUT", "/v1/users/alice/register", usersTestSecret, good, 405, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			code, body := r.call(t, tc.method, tc.path, tc.secret, tc.body)
			if code != tc.want || !strings.Contains(body, tc.contains) {
				t.Fatalf("%s %s: %d %s, want %d containing %q", tc.method, tc.path, code, body, tc.want, tc.contains)
			}
		})
	}
	// Nothing was stored by the refused requests.
	if n, _ := r.st.Redis().Exists(context.Background(), r.u.keys.record("alice")).Result(); n != 0 {
		t.Fatal("a refused request stored a registration")
	}
}
