package otbridge_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"hash/crc32"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

var secret = []byte("test secret of at least 16 bytes")

// newRedisClient returns a client for one instance: every feed shard reader holds a pooled
// connection in XREAD BLOCK, so the pool must be larger than the shard count.
func newRedisClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	t.Cleanup(func() { c.Close() })
	return c
}

// instance is one gateway instance: store, feed and bridge on an httptest server.
type instance struct {
	st   *store.Store
	feed *store.Feed
	b    *otbridge.Bridge
	reg  *prometheus.Registry
	srv  *httptest.Server
	url  string // ws://.../dsm
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// startInstance runs a store, feed and bridge on rdb until the test ends.
func startInstance(t testing.TB, rdb redis.UniversalClient, cfg otbridge.Config, scfg store.Config, log *slog.Logger) *instance {
	t.Helper()
	if log == nil {
		log = testLogger(t)
	}
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	if cfg.Instance == "" {
		// Unique per instance, as the gateway's hostname-pid is per process.
		cfg.Instance = "otbridge-test-" + rand.Text()[:8]
	}
	st, err := store.New(scfg, rdb, log)
	if err != nil {
		t.Fatal(err)
	}
	// A short XREAD block makes start (readiness waits for one read per shard) and
	// shutdown quick in tests.
	feed := store.NewFeed(store.FeedConfig{Block: 100 * time.Millisecond}, st, log)
	reg := prometheus.NewRegistry()
	b, err := otbridge.New(cfg, st, feed, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = feed.Run(ctx); done <- struct{}{} }()
	go func() { _ = b.Run(ctx); done <- struct{}{} }()
	mux := http.NewServeMux()
	mux.Handle("/dsm", b.Handler())
	mux.Handle("/session", b.SessionHandler())
	mux.Handle("/v1/sessions", b.SessionsAPIHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		srv.Close()
	})
	deadline := time.Now().Add(20 * time.Second)
	for !b.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("bridge not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return &instance{st: st, feed: feed, b: b, reg: reg, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/dsm"}
}

// session gets a client key and token: an anonymous one from GET /session, a user-bound
// one from POST /v1/sessions, as a site's backend gets it.
func (in *instance) session(t testing.TB, user string) otbridge.Session {
	t.Helper()
	var resp *http.Response
	var err error
	if user == "" {
		resp, err = http.Get(in.srv.URL + "/session")
	} else {
		req, _ := http.NewRequest(http.MethodPost, in.srv.URL+"/v1/sessions", strings.NewReader(`{"user":"`+user+`"}`))
		req.Header.Set("Authorization", "Bearer "+string(secret))
		resp, err = http.DefaultClient.Do(req)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s otbridge.Session
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Token == "" {
		t.Fatalf("session: %v %+v (HTTP %d)", err, s, resp.StatusCode)
	}
	return s
}

func (in *instance) dial(t testing.TB, cfg dsmclient.Config) *dsmclient.Client {
	t.Helper()
	cfg.URL = in.url
	if cfg.Log == nil {
		cfg.Log = testLogger(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dsmclient.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// metric returns the value of a counter or gauge family (summed over labels).
func (in *instance) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := in.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.Counter != nil {
				sum += m.Counter.GetValue()
			}
			if m.Gauge != nil {
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// keyOf names a Redis key of obj as store lays them out (kind f, m, l or s).
func keyOf(obj, kind string, shards int) string {
	n := crc32.ChecksumIEEE([]byte(obj)) % uint32(shards)
	return "dsm:{" + itoa(int64(n)) + "}:" + kind + ":" + obj
}

func itoa(n int64) string { return strconvItoa(n) }

// raw is a protocol-level client for bad-input tests.
type raw struct {
	t  testing.TB
	ws *websocket.Conn
}

func dialRaw(t testing.TB, url string) *raw {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &raw{t: t, ws: ws}
}

func (r *raw) send(s string) {
	r.t.Helper()
	if err := r.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads the next message; it fails the test on a read error.
func (r *raw) recv() map[string]any {
	r.t.Helper()
	m, err := r.next()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return m
}

func (r *raw) next() (map[string]any, error) {
	_ = r.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := r.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		r.t.Fatalf("server sent non-JSON %q", b)
	}
	return m, nil
}

func (r *raw) hello(token string) map[string]any {
	r.t.Helper()
	return r.helloEpoch(token, "")
}

// helloEpoch says hello as the page load epoch ("" for none).
func (r *raw) helloEpoch(token, epoch string) map[string]any {
	r.t.Helper()
	if epoch == "" {
		r.send(`{"t":"hello","token":"` + token + `"}`)
	} else {
		r.send(`{"t":"hello","token":"` + token + `","epoch":"` + epoch + `"}`)
	}
	m := r.recv()
	if m["t"] != "welcome" {
		r.t.Fatalf("hello: got %v", m)
	}
	return m
}

// usable checks the connection still answers a ping.
func (r *raw) usable() {
	r.t.Helper()
	r.send(`{"t":"ping","id":"check"}`)
	for {
		m := r.recv()
		if m["t"] == "pong" && m["id"] == "check" {
			return
		}
	}
}

func strconvItoa(n int64) string { return strconv.FormatInt(n, 10) }

// objectKeys counts the keys of DSM objects and feeds in Redis (not the presence set,
// which a hello writes).
func objectKeys(t testing.TB, rdb *redis.Client) int {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "dsm:{*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}
