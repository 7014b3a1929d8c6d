package asadapter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// testSIP is a small SIP port for these tests: a sipgo UA on a private UDP listener that
// routes through an optional outbound proxy, as the Adapter does. The tests of this half
// use it so they do not depend on the call controller.
type testSIP struct {
	ua    *sipgo.UserAgent
	cli   *sipgo.Client
	srv   *sipgo.Server
	conn  net.PacketConn
	port  int
	proxy string // "host:port" or ""
	// notify is the NOTIFY handler, set after the server is serving (hence atomic).
	notify atomic.Pointer[sipgo.RequestHandler]
}

func newTestSIP(t *testing.T, proxy string) *testSIP {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(quiet), sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testSIP{ua: ua, cli: cli, srv: srv, conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port, proxy: proxy}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		if h := s.notify.Load(); h != nil {
			(*h)(req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Subscriptions Here", nil))
	})
	go func() { _ = srv.ServeUDP(conn) }()
	// Requests bound to the listener fail until the transport layer has it (it would try
	// to bind the port a second time), so wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, err := ua.TransportLayer().GetConnection("udp", conn.LocalAddr().String()); err == nil && c != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sipgo did not take the UDP listener")
		}
	}
	t.Cleanup(func() { conn.Close(); ua.Close() })
	return s
}

func (s *testSIP) SIP() (*sipgo.UserAgent, *sipgo.Client) { return s.ua, s.cli }

func (s *testSIP) ContactURI(user, transport string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: s.port}
}

func (s *testSIP) PrepareRequest(req *sip.Request) {
	if req.Route() == nil && s.proxy != "" {
		var u sip.Uri
		_ = sip.ParseUri("sip:"+s.proxy+";lr", &u)
		req.PrependHeader(&sip.RouteHeader{Address: u})
	}
	req.RemoveHeader("Via")
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: s.port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	req.Laddr = sip.Addr{IP: net.ParseIP("127.0.0.1"), Port: s.port, Hostname: "127.0.0.1"}
}

// usersRig is a Users on a private Redis with its HTTP API served.
type usersRig struct {
	u    *Users
	st   *store.Store
	reg  *prometheus.Registry
	http *httptest.Server
	stop func() // stops Run (as a graceful shutdown would); safe twice
}

const usersTestSecret = "s3cret-for-tests"

func startUsers(t *testing.T, port SIPPort, cfg UsersConfig, redisAddr string) *usersRig {
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
	feed := store.NewFeed(store.FeedConfig{}, st, log)
	reg := prometheus.NewRegistry()
	cfg.Secret = usersTestSecret
	u, err := NewUsers(cfg, port, st, feed, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	if ts, ok := port.(*testSIP); ok {
		h := sipgo.RequestHandler(u.HandleNotify)
		ts.notify.Store(&h)
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
	r := startUsers(t, newTestSIP(t, ""), UsersConfig{}, "")
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
