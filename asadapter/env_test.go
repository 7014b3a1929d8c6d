package asadapter

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/sipport"
	"dsmgw/internal/testpeer"
	"dsmgw/mediagw"
	"dsmgw/store"
)

// waitFor is the failure deadline of every wait in these tests (not a timing assertion:
// things normally happen in milliseconds).
const waitFor = 20 * time.Second

const testSecret = "test-secret-0123456789abcdef"

// feedBlock is the change feed's XREAD block in these tests (200 ms, as in the store's
// own tests, instead of 2 s).
const feedBlock = 200 * time.Millisecond

// env is one test's private Redis, DSM store and feed, and in-process media gateway.
type env struct {
	t     testing.TB
	ctx   context.Context
	redis *testpeer.Redis
	st    *store.Store
	feed  *store.Feed
	gw    *mediagw.Gateway
	mgwc  *mediagw.Client
	log   *slog.Logger
	seq   map[string]int64
	dir   *testUsers     // which browser each user is logged in with, as the users side keeps it
	wg    sync.WaitGroup // the feed's and the media gateway's Run

	emu     sync.Mutex          // guards eventTo
	eventTo map[string]*Adapter // instance → adapter, receiving its terminations' events
}

// testLogger is the log of one test: on stderr with ASADAPTER_TEST_LOG set, else kept in
// memory and shown only if the test fails (call it before starting what logs: its cleanup
// must run after theirs).
func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ASADAPTER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w := &testLog{}
	t.Cleanup(func() {
		if t.Failed() {
			w.mu.Lock()
			t.Logf("log of the test:\n%s", w.buf.String())
			w.mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testLog keeps a test's log lines.
type testLog struct {
	mu  sync.Mutex // guards buf: handlers write from many goroutines
	buf bytes.Buffer
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvMedia(t, nil)
}

// newEnvMedia is newEnv with the media gateway's configuration adjusted by mod (shorter
// timeouts for the tests of their paths).
func newEnvMedia(t testing.TB, mod func(*mediagw.Config)) *env {
	t.Helper()
	log := testLogger(t)
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	rdb := r.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, ctx: ctx, redis: r, log: log, seq: map[string]int64{}, dir: &testUsers{byUser: map[string]string{}}}
	// Runs before the client closes (cleanups run last-registered first): the feed and the
	// media gateway end, and the test waits for them.
	t.Cleanup(func() { cancel(); e.wg.Wait() })
	st, err := store.New(store.Config{Shards: 4}, rdb, e.log)
	if err != nil {
		t.Fatal(err)
	}
	// A short XREAD block: the test's cleanup waits for the feed, which notices the end of
	// its context only between reads.
	feed := store.NewFeed(store.FeedConfig{Block: feedBlock}, st, e.log)
	e.st, e.feed = st, feed
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = feed.Run(ctx) }()
	e.startMediaGateway(mod)
	return e
}

// startMediaGateway runs the real media gateway in process behind an httptest server. Its
// events go in process to the adapter that owns the termination, as cmd/gateway wires
// them.
func (e *env) startMediaGateway(mod func(*mediagw.Config)) {
	e.gw, e.mgwc, _ = e.newMediaGateway(mod)
}

// newMediaGateway runs one more media gateway in process (see startMediaGateway) and
// returns it, its client and its HTTP server (closing it cuts the gateway off).
func (e *env) newMediaGateway(mod func(*mediagw.Config)) (*mediagw.Gateway, *mediagw.Client, *httptest.Server) {
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	// A range of 400 ports below Linux's ephemeral range (32768 and up), where the peers'
	// free ports are found: an RTP port taken by one test's media gateway must not be the
	// port another test has just picked for its sipp or Kamailio and not yet bound.
	base := 20000 + 2*rand.IntN(6000)
	cfg := mediagw.Config{
		BindAddr: "127.0.0.1", PortMin: base, PortMax: base + 399,
		PublicWSURL: "ws" + strings.TrimPrefix(srv.URL, "http"), Secret: testSecret,
		OnEvent: func(ev mediagw.Event) {
			e.emu.Lock()
			a := e.eventTo[ev.Owner]
			e.emu.Unlock()
			if a != nil {
				a.HandleMediaEvent(ev)
			}
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	gw, err := mediagw.New(cfg, prometheus.NewRegistry(), e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	mux.Handle("/v1/", gw.APIHandler())
	mux.Handle("/media/", gw.MediaHandler())
	e.wg.Add(1)
	go func() { defer e.wg.Done(); _ = gw.Run(e.ctx) }()
	e.t.Cleanup(func() { gw.Close() })
	c, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: srv.URL, Secret: testSecret})
	if err != nil {
		e.t.Fatal(err)
	}
	return gw, c, srv
}

// instance is one running adapter.
type instance struct {
	a    *Adapter
	stop context.CancelFunc
	done chan struct{}
}

// kill stops the instance as a crash would look from outside: Run's context ends, its
// listeners close, no BYE is sent.
func (i *instance) kill() {
	i.stop()
	<-i.done
}

// adapter starts an adapter with test defaults (loopback listeners on free ports, short
// claim lease and rescan) adjusted by mod.
func (e *env) adapter(name string, mod func(*Config)) *instance {
	e.t.Helper()
	return e.adapterMGW(name, mod, nil)
}

// adapterMGW is adapter with the media gateway client wrapped by wrap (nil: as is), for
// the tests that hold a media gateway request at a chosen moment.
func (e *env) adapterMGW(name string, mod func(*Config), wrap func(MediaGateway) MediaGateway) *instance {
	e.t.Helper()
	cfg := Config{
		Instance: name, ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0",
		// A 3 s lease: tests run with -race beside other packages' tests on a small machine,
		// where a 1.5 s lease saw renewals late enough to move a call off a live instance.
		InviteTimeout: 10 * time.Second, ClaimTTL: 3 * time.Second,
		Rescan: 300 * time.Millisecond, Workers: 8, SIPLog: os.Getenv("ASADAPTER_TEST_LOG") == "sip",
		// The peers of these tests (sipp, Kamailio, baresip) run on 127.0.0.1; the tests
		// of the SIP edge attack from 127.0.0.2, or leave this out.
		Edge: edge.Config{Trusted: []string{"127.0.0.1"}},
	}
	if mod != nil {
		mod(&cfg)
	}
	var a *Adapter
	var mgw MediaGateway = NewMediaGatewayClient(e.mgwc, name, "")
	if wrap != nil {
		mgw = wrap(mgw)
	}
	a, err := New(cfg, e.st, e.feed, mgw, prometheus.NewRegistry(), e.log.With("instance", name))
	if err != nil {
		e.t.Fatal(err)
	}
	a.UseUsers(e.dir)
	e.emu.Lock()
	if e.eventTo == nil {
		e.eventTo = map[string]*Adapter{}
	}
	e.eventTo[name] = a
	e.emu.Unlock()
	ctx, cancel := context.WithCancel(e.ctx)
	i := &instance{a: a, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(i.done)
		if err := a.Run(ctx); err != nil {
			e.t.Errorf("adapter %s: Run: %v", name, err)
		}
	}()
	e.t.Cleanup(i.kill)
	return i
}

// browser writes ops to a player object as the browser with that client key would
// (through the same commit path), and adds the player to the index.
func (e *env) browser(player string, ops ...store.Op) {
	e.t.Helper()
	client, _, _ := e.st.Schema().ParsePlayerAddress(player)
	who := "browser/" + client
	e.seq[player]++
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: player, Client: who, Seq: e.seq[player], Base: -1, Ops: ops}); err != nil {
		e.t.Fatalf("browser write %s: %v", player, err)
	}
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: "players", Client: who, Base: -1,
		Ops: []store.Op{store.Set(player, "audio")}}); err != nil {
		e.t.Fatalf("browser index write: %v", err)
	}
}

// dial writes what a browser writes to call remote.
func (e *env) dial(player, remote string) {
	e.browser(player, store.Set("service", "mmtel"), store.Set("remote", remote),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting"))
}

// fields reads a player object.
func (e *env) fields(player string) map[string]string {
	r, err := e.st.Snapshot(e.ctx, player)
	if err != nil {
		e.t.Fatalf("read %s: %v", player, err)
	}
	return r.Fields
}

// waitState waits until the player's field holds want, and returns the fields. A
// terminal state other than want fails at once, with the fields in the message.
func (e *env) waitField(player, field, want string) map[string]string {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		fl := e.fields(player)
		if fl[field] == want {
			return fl
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: %s is %q, want %q (fields %v)", player, field, fl[field], want, fl)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFieldFunc waits until ok accepts the player's fields, and returns them.
func (e *env) waitFieldFunc(player, what string, ok func(map[string]string) bool) map[string]string {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		fl := e.fields(player)
		if ok(fl) {
			return fl
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: never %s (fields %v)", player, what, fl)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits until no termination is left in the media gateway.
func (e *env) waitNoTerminations() {
	e.t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ts, err := e.mgwc.List(e.ctx, "")
		if err == nil && len(ts) == 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("terminations left: %v %v", ts, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSipp waits for sipp to end and checks that every call of its scenario succeeded.
func waitSipp(t *testing.T, s *testpeer.Sipp) {
	t.Helper()
	code, err := s.Wait(waitFor)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("sipp exited with %d (some calls failed)", code)
	}
}

func sippScenario(t *testing.T, name string, args ...string) *testpeer.Sipp {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path,
		RTPEcho: true, Args: append([]string{"-m", "1"}, args...)})
}

// testpeerSipp starts a scenario on a given sipp transport ("u1", "t1").
func testpeerSipp(t *testing.T, name, transport string) *testpeer.Sipp {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	// StartSipp returns once sipp holds its SIP port (UDP socket or TCP listener).
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, Transport: transport,
		RTPEcho: true, Args: []string{"-m", "1"}})
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// testUsers is the users side of the tests that run call control without it: a map the
// test fills as a login would, no bindings and no credentials (users_adapter_test.go and
// b2bua_test.go run the real one).
type testUsers struct {
	mu     sync.Mutex // guards byUser
	byUser map[string]string
}

var _ sipport.Users = (*testUsers)(nil)

func (d *testUsers) login(user, client string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if client == "" {
		delete(d.byUser, user)
		return
	}
	d.byUser[user] = client
}

func (d *testUsers) ClientOf(_ context.Context, user string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byUser[user], nil
}

func (d *testUsers) UserOf(_ context.Context, client string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for u, c := range d.byUser {
		if c == client {
			return u, nil
		}
	}
	return "", nil
}

func (d *testUsers) Binding(context.Context, string) (sipport.Binding, bool, error) {
	return sipport.Binding{}, false, nil
}

func (d *testUsers) Authorize(_ context.Context, user string, _ *sip.Request, _ *sip.Response) error {
	return fmt.Errorf("test users: %s: %w", user, sipport.ErrNoCredentials)
}
