package mediagw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func isAPI(err error, status int, sentinel error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status && errors.Is(err, sentinel)
}

func TestAPIErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	c := e.newCall(t, nil, false)

	raw := func(method, path, auth, body string) (int, string) {
		req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode >= 400 && ct != "application/json" {
			t.Errorf("%s %s: error content type %q", method, path, ct)
		}
		return resp.StatusCode, string(b)
	}
	bearer := "Bearer " + testSecret
	cases := []struct {
		name, method, path, auth, body string
		status                         int
		code                           string
	}{
		{"no auth", "GET", "/v1/terminations", "", "", 401, CodeUnauthorized},
		{"wrong secret", "GET", "/v1/terminations", "Bearer " + strings.Repeat("x", 28), "", 401, CodeUnauthorized},
		{"basic auth", "GET", "/v1/terminations", "Basic " + testSecret, "", 401, CodeUnauthorized},
		{"bad json", "POST", "/v1/terminations", bearer, "{", 400, CodeBadRequest},
		{"unknown field", "POST", "/v1/terminations", bearer, `{"owner":"a","colour":"red"}`, 400, CodeBadRequest},
		{"trailing data", "POST", "/v1/terminations", bearer, `{"owner":"a"} {}`, 400, CodeBadRequest},
		{"no owner", "POST", "/v1/terminations", bearer, `{}`, 400, CodeBadRequest},
		{"bad event url", "POST", "/v1/terminations", bearer, `{"owner":"a","event_url":"ftp://x"}`, 400, CodeBadRequest},
		{"too large", "POST", "/v1/terminations", bearer, `{"owner":"` + strings.Repeat("a", 70000) + `"}`, 413, CodeTooLarge},
		{"unknown id", "GET", "/v1/terminations/t-nope", bearer, "", 404, CodeNotFound},
		{"unknown path", "GET", "/v1/other", bearer, "", 404, CodeNotFound},
		{"unknown sub", "GET", "/v1/terminations/" + c.id + "/x", bearer, "", 404, CodeNotFound},
		{"method", "PUT", "/v1/terminations", bearer, "", 405, CodeMethodNotAllowed},
		{"method remote", "POST", "/v1/terminations/" + c.id + "/remote", bearer, "{}", 405, CodeMethodNotAllowed},
		{"remote not ip", "PUT", "/v1/terminations/" + c.id + "/remote", bearer,
			`{"address":"example.com","rtp_port":4000,"payload_types":[{"pt":0,"name":"PCMU","clock_rate":8000}]}`, 400, CodeBadRequest},
		{"remote bad port", "PUT", "/v1/terminations/" + c.id + "/remote", bearer,
			`{"address":"127.0.0.1","rtp_port":0,"payload_types":[{"pt":0,"name":"PCMU","clock_rate":8000}]}`, 400, CodeBadRequest},
		{"remote rtcp pt", "PUT", "/v1/terminations/" + c.id + "/remote", bearer,
			`{"address":"127.0.0.1","rtp_port":4000,"payload_types":[{"pt":72,"name":"x","clock_rate":8000}]}`, 400, CodeBadRequest},
		{"remote dup pt", "PUT", "/v1/terminations/" + c.id + "/remote", bearer,
			`{"address":"127.0.0.1","rtp_port":4000,"payload_types":[{"pt":0,"name":"PCMU","clock_rate":8000},{"pt":0,"name":"PCMU","clock_rate":8000}]}`, 400, CodeBadRequest},
		{"remote no pt", "PUT", "/v1/terminations/" + c.id + "/remote", bearer,
			`{"address":"127.0.0.1","rtp_port":4000,"payload_types":[]}`, 400, CodeBadRequest},
		{"token before remote", "POST", "/v1/terminations/" + c.id + "/token", bearer, "", 409, CodeConflict},
		{"dtmf before remote", "POST", "/v1/terminations/" + c.id + "/dtmf", bearer, `{"digits":"1"}`, 409, CodeConflict},
		{"hold before remote", "PATCH", "/v1/terminations/" + c.id, bearer, `{"hold":true}`, 409, CodeConflict},
	}
	for _, tc := range cases {
		status, body := raw(tc.method, tc.path, tc.auth, tc.body)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) || !strings.Contains(body, `"error":"mediagw`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}

	// The Go client maps them to sentinels.
	if _, err := e.cl.Get(ctx, "t-nope"); !isAPI(err, 404, ErrNotFound) {
		t.Errorf("client get unknown: %v", err)
	}
	if err := e.cl.Delete(ctx, "t-nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("client delete unknown: %v", err)
	}
	bad, _ := NewClient(ClientConfig{BaseURL: e.srv.URL, Secret: strings.Repeat("y", 20)})
	if _, err := bad.List(ctx, ""); !isAPI(err, 401, ErrUnauthorized) {
		t.Errorf("client wrong secret: %v", err)
	}
	p := newPeer(t)
	pcmuOnly := p.remote(PayloadType{PT: 0, Name: "PCMU", ClockRate: 8000})
	if _, err := e.cl.AddRemote(ctx, c.id, pcmuOnly); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.SendDTMF(ctx, c.id, DTMFRequest{Digits: "1"}); !isAPI(err, 409, ErrConflict) {
		t.Errorf("dtmf without telephone-event: %v", err)
	}
	for _, d := range []DTMFRequest{{Digits: "x"}, {Digits: ""}, {Digits: "1", DurationMS: 10}, {Digits: strings.Repeat("1", 65)}} {
		if err := e.cl.SendDTMF(ctx, c.id, d); !isAPI(err, 400, ErrBadRequest) {
			t.Errorf("dtmf %+v: %v", d, err)
		}
	}
	if _, err := NewClient(ClientConfig{BaseURL: "ftp://x", Secret: testSecret}); err == nil {
		t.Error("client accepted ftp base url")
	}
	if _, err := NewClient(ClientConfig{BaseURL: e.srv.URL, Secret: "short"}); err == nil {
		t.Error("client accepted a short secret")
	}
}

func TestListGetDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	a, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "as-1", CallID: "c1", Player: "players/k1/audio"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "as-2"}); err != nil {
		t.Fatal(err)
	}
	all, err := e.cl.List(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("list: %v %d", err, len(all))
	}
	mine, err := e.cl.List(ctx, "as-1")
	if err != nil || len(mine) != 1 || mine[0].ID != a.ID || mine[0].CallID != "c1" || mine[0].Player != "players/k1/audio" {
		t.Fatalf("list as-1: %v %+v", err, mine)
	}
	got, err := e.cl.Get(ctx, a.ID)
	if err != nil || got.RTPPort != a.RTPPort || got.Address != "127.0.0.1" || got.Remote != nil {
		t.Fatalf("get: %v %+v", err, got)
	}
	if err := e.cl.Delete(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.Delete(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if n := counterValue(t, e.gw.m.ended.WithLabelValues("deleted")); n != 1 {
		t.Errorf("ended{deleted} = %v", n)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, false)
	other := e.newCall(t, newPeer(t), false)
	dial := func(url string) (int, error) {
		ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err == nil {
			ws.Close()
			return 101, nil
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, err
	}
	now := time.Now()
	good := newToken(testSecret, c.id, now.Add(20*time.Second))
	cases := []struct {
		name   string
		url    string
		status int
	}{
		{"missing", e.wsBase + "/media/" + c.id, 401},
		{"empty", wsURLFor(e.wsBase, c.id, ""), 401},
		{"garbage", wsURLFor(e.wsBase, c.id, "abc"), 403},
		{"forged", wsURLFor(e.wsBase, c.id, newToken(strings.Repeat("z", 20), c.id, now.Add(20*time.Second))), 403},
		{"extended", wsURLFor(e.wsBase, c.id, "9999999999."+strings.SplitN(good, ".", 2)[1]), 403},
		{"expired", wsURLFor(e.wsBase, c.id, newToken(testSecret, c.id, now.Add(-time.Second))), 403},
		{"other termination", wsURLFor(e.wsBase, c.id, strings.SplitN(other.url, "token=", 2)[1]), 403},
		{"beyond the lifetime", wsURLFor(e.wsBase, c.id, newToken(testSecret, c.id, now.Add(time.Hour))), 403},
		{"unknown termination", wsURLFor(e.wsBase, "t-0000000000000000", newToken(testSecret, "t-0000000000000000", now.Add(20*time.Second))), 404},
		{"valid", wsURLFor(e.wsBase, c.id, good), 101},
		{"valid from api", c.url, 101},
	}
	for _, tc := range cases {
		if status, err := dial(tc.url); status != tc.status {
			t.Errorf("%s: status %d (%v), want %d", tc.name, status, err, tc.status)
		}
	}
	if err := checkToken(testSecret, c.id, newToken(testSecret, c.id, now.Add(-time.Second)), now, time.Minute); !errors.Is(err, ErrTokenExpired) || !errors.Is(err, ErrBadToken) {
		t.Errorf("expired token error %v", err)
	}
	// A fresh URL from the API works too.
	mu, err := e.cl.NewURL(context.Background(), c.id)
	if err != nil {
		t.Fatal(err)
	}
	if status, err := dial(mu.URL); status != 101 {
		t.Errorf("new url: %d %v", status, err)
	}
}

// A second attach replaces the first, which is closed with 4001.
func TestSecondAttachReplaces(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	second := dialWS(t, c.url)
	_ = c.ws.SetReadDeadline(time.Now().Add(deadline))
	_, _, err := c.ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != wsCloseReplaced {
		t.Fatalf("first websocket: %v, want close 4001", err)
	}
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 1, 0, 1, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	recvWS(t, second)
	if n := counterValue(t, e.gw.m.attaches.WithLabelValues("replaced")); n != 1 {
		t.Errorf("attaches{replaced} = %v", n)
	}
}

func TestMetricsExposed(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	sendWS(t, c.ws, rtpPacket(0, 1, 0, 1, 160))
	recvUDP(t, p.rtp)
	sendWS(t, c.ws, rtpPacket(9, 1, 0, 1, 160))
	eventually(t, "drop", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropUnknownPT] == 1 })
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
	}
	for _, name := range []string{"mediagw_terminations", "mediagw_packets_total", "mediagw_drops_total"} {
		if !seen[name] {
			t.Errorf("metric %s missing", name)
		}
	}
	eventually(t, "packets{ws_to_udp,rtp} = 1", func() bool { return counterValue(t, e.gw.m.wsToUDP.rtpPackets) == 1 })
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	t.Parallel()
	base := Config{PublicWSURL: "wss://media.example.com/", Secret: testSecret}
	c, err := base.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.PortMin != 20000 || c.PortMax != 29999 || c.TokenTTL != 30*time.Second || c.MediaTimeout != 30*time.Second ||
		c.PublicAddr != "127.0.0.1" || c.PublicWSURL != "wss://media.example.com" || c.MaxTerminations != 5000 {
		t.Errorf("defaults %+v", c)
	}
	bad := []func(*Config){
		func(c *Config) { c.Secret = "short" },
		func(c *Config) { c.PublicWSURL = "" },
		func(c *Config) { c.PublicWSURL = "http://x" },
		func(c *Config) { c.BindAddr = "0.0.0.0" },
		func(c *Config) { c.BindAddr = "host" },
		func(c *Config) { c.PortMin, c.PortMax = 100, 200 },
		func(c *Config) { c.PortMin, c.PortMax = 30000, 30000 },
	}
	for i, mut := range bad {
		c := base
		mut(&c)
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("bad config %d accepted", i)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
