package webclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"dsmgw/internal/proc"
	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// sharedPolicy grants every client the objects under "shared/" (so that several clients
// can race on the same objects, as the convergence test needs) and applies the
// production grants to everything else.
type sharedPolicy struct{ otbridge.DefaultPolicy }

func (p sharedPolicy) CanRead(c otbridge.Claims, obj string) bool {
	return strings.HasPrefix(obj, "shared/") || p.DefaultPolicy.CanRead(c, obj)
}

func (p sharedPolicy) CanWrite(c otbridge.Claims, obj, field string) bool {
	return strings.HasPrefix(obj, "shared/") || p.DefaultPolicy.CanWrite(c, obj, field)
}

// testDSMSecret is the token secret of the test gateways.
const testDSMSecret = "webclient-test-secret-0123456789"

// gateway is an in-process test gateway: one Redis, and per instance a store, a feed, a
// bridge and this package's handler on an httptest server, plus test-only endpoints.
type gateway struct {
	URLs  []string
	Store *store.Store
	Redis *redis.Client
	mux   []*http.ServeMux
}

type gatewayOptions struct {
	Instances int
	TokenTTL  time.Duration
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startGateway starts Redis and opts.Instances gateway instances sharing it.
func startGateway(t *testing.T, opts gatewayOptions) *gateway {
	t.Helper()
	if opts.Instances <= 0 {
		opts.Instances = 1
	}
	rd := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	log := testLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	g := &gateway{Redis: rd.Client(t)}
	wc, err := New(Config{}, log)
	if err != nil {
		t.Fatal(err)
	}
	var bridges []*otbridge.Bridge
	var feeds []*store.Feed
	for i := range opts.Instances {
		// The op log is long so that the convergence test can read every op back.
		st, err := store.New(store.Config{OplogLen: 20000}, rd.Client(t), log)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			g.Store = st
			if err := st.EnableNotifications(ctx); err != nil {
				t.Fatal(err)
			}
		}
		feed := store.NewFeed(store.FeedConfig{}, st, log)
		br, err := otbridge.New(otbridge.Config{
			Secret:       []byte(testDSMSecret),
			TokenTTL:     opts.TokenTTL,
			Instance:     "gw" + strconv.Itoa(i+1),
			Policy:       sharedPolicy{},
			OpsPerSecond: 5000, // the convergence clients write far faster than a page
			DemoSessions: true, // the demo page asks for /session?user=alice
		}, st, feed, prometheus.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(2)
		go func() { defer wg.Done(); _ = feed.Run(ctx) }()
		go func() { defer wg.Done(); _ = br.Run(ctx) }()
		mux := http.NewServeMux()
		mux.Handle("/dsm", br.Handler())
		mux.Handle("/session", br.SessionHandler())
		mux.Handle(SchemaPath, wc)
		mux.Handle("/", wc)
		g.testEndpoints(mux, st)
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		g.URLs = append(g.URLs, srv.URL)
		g.mux = append(g.mux, mux)
		bridges = append(bridges, br)
		feeds = append(feeds, feed)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i := range bridges {
		for !bridges[i].Ready() || !feeds[i].Ready() {
			if time.Now().After(deadline) {
				t.Fatalf("gateway instance %d not ready", i+1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return g
}

// testEndpoints adds what the node tests use to act as a Go service and to look into Redis.
func (g *gateway) testEndpoints(mux *http.ServeMux, st *store.Store) {
	mux.HandleFunc("POST /test/commit", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Obj string     `json:"obj"`
			Ops []store.Op `json:"ops"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		c, err := st.Commit(r.Context(), store.Commit{Obj: req.Obj, Client: "go-service", Base: -1, Ops: req.Ops})
		writeJSON(w, map[string]any{"rev": c.Rev, "error": errString(err)})
	})
	mux.HandleFunc("GET /test/read", func(w http.ResponseWriter, r *http.Request) {
		since := int64(-1)
		if s := r.URL.Query().Get("since"); s != "" {
			since, _ = strconv.ParseInt(s, 10, 64)
		}
		rd, err := st.Since(r.Context(), r.URL.Query().Get("obj"), since)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		writeJSON(w, map[string]any{"rev": rd.Rev, "fields": rd.Fields, "log": rd.Log})
	})
	// An outside write (as redis-cli HSET would make), to be adopted as a resync.
	mux.HandleFunc("POST /test/hset", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Obj, Field, Value string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		key := fmt.Sprintf("dsm:{%d}:f:%s", crc32.ChecksumIEEE([]byte(req.Obj))%uint32(st.Config().Shards), req.Obj)
		err := st.Redis().HSet(r.Context(), key, req.Field, req.Value).Err()
		writeJSON(w, map[string]any{"error": errString(err)})
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	var ee *store.ExpectError
	if errors.As(err, &ee) {
		return "expect_failed: " + err.Error()
	}
	return err.Error()
}

// TestNodeClient runs the node test suite (webclient/test) against two running gateway
// instances sharing one Redis: the unit tests of the client's state machine and the
// tests of dsm.js against the real bridge. Node's output is streamed into the test log.
func TestNodeClient(t *testing.T) {
	t.Parallel()
	node := testpeer.Need(t, "node")
	// The two instances racing in the convergence test keep the default token lifetime:
	// with a short one, a renewal made late on a loaded machine finds the token expired
	// and the client ends with bad_token mid-test. Only the renewal test talks to the
	// instance of short-lived tokens, and 10 s lets it renew 2 s before expiry, a margin
	// far above a late timer or a slow request under -race.
	const shortTTL = 10 * time.Second
	g := startGateway(t, gatewayOptions{Instances: 2})
	short := startGateway(t, gatewayOptions{Instances: 1, TokenTTL: shortTTL})
	seed := strconv.FormatInt(time.Now().UnixNano()%1e9, 10)
	if s := os.Getenv("DSM_SEED"); s != "" {
		seed = s
	}
	t.Logf("DSM_SEED=%s", seed)
	files, _ := filepath.Glob(filepath.Join("test", "*.test.js"))
	if len(files) == 0 {
		t.Fatal("no node tests found")
	}
	// Each test of the files gets a deadline of its own (a hang names its test), the
	// runner exits when they are done even if a file left a timer or a socket behind,
	// and node runs in a process group of its own that is stopped whole: the runner
	// starts one process per file, which a kill of the runner alone left running.
	args := append([]string{"--test", "--test-reporter=spec", "--test-concurrency=1",
		"--test-timeout=60000", "--test-force-exit"}, files...)
	cmd := exec.Command(node, args...)
	cmd.Env = append(os.Environ(), "DSM_GATEWAY_URL="+g.URLs[0], "DSM_GATEWAY_URL2="+g.URLs[1], "DSM_SEED="+seed,
		"DSM_SHORT_TTL_URL="+short.URLs[0], "DSM_TOKEN_TTL="+strconv.Itoa(int(shortTTL/time.Second)),
		"DSM_SECRET="+testDSMSecret) // a test signs tokens as a site's backend would
	// A pipe of our own: the child's reaper must not close it before the output is read.
	out, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = w, w
	child, err := proc.Start("node tests", cmd, proc.Options{Pdeathsig: syscall.SIGKILL})
	w.Close() // node holds its own copy
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(child.Stop)
	// A failure deadline for the whole run, far above its usual half minute.
	stop := time.AfterFunc(5*time.Minute, func() {
		t.Error("node tests still running after 5 minutes: stopped")
		child.Stop()
	})
	defer stop.Stop()
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		t.Log(sc.Text())
	}
	if err := child.Wait(); err != nil {
		t.Fatalf("node tests failed: %v (replay with DSM_SEED=%s)", err, seed)
	}
}
