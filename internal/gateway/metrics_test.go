package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// callUp places an outgoing call from a player as a browser would (through the DSM),
// waits until it is connected, attaches its media and has a few packets echoed by the
// far end. It returns what identifies the call: the player, the Call-ID, the termination
// id, the media URL.
func callUp(t *testing.T, app *App, player, target string) []string {
	t.Helper()
	ctx := context.Background()
	st := app.Store()
	if _, err := st.Commit(ctx, store.Commit{Obj: player, Client: "browser/metrics", Base: -1, Ops: []store.Op{
		store.Set("service", "mmtel"), store.Set("remote", target),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Commit(ctx, store.Commit{Obj: "players", Client: "browser/metrics", Base: -1,
		Ops: []store.Op{store.Set(player, "audio")}}); err != nil {
		t.Fatal(err)
	}
	var fl map[string]string
	end := time.Now().Add(20 * time.Second)
	for {
		snap, err := st.Snapshot(ctx, player)
		if err != nil {
			t.Fatal(err)
		}
		fl = snap.Fields
		if fl["mgw_state"] == "connected" && fl["mgw_url"] != "" {
			break
		}
		if fl["mgw_state"] == "failed" || time.Now().After(end) {
			t.Fatalf("%s: not connected: %v", player, fl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ws, _, err := websocket.DefaultDialer.Dial(fl["mgw_url"], nil)
	if err != nil {
		t.Fatalf("%s: media attach: %v", player, err)
	}
	t.Cleanup(func() { ws.Close() })
	for i := 0; i < 5; i++ {
		p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: uint16(i), Timestamp: uint32(160 * i), SSRC: 0x5eed},
			Payload: make([]byte, 160)}
		b, _ := p.Marshal()
		if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
			t.Fatal(err)
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatalf("%s: no echo from the far end: %v", player, err)
		}
	}
	u, err := url.Parse(fl["mgw_url"])
	if err != nil {
		t.Fatal(err)
	}
	return []string{player, fl["call_id"], strings.TrimPrefix(u.Path, "/media/"), fl["mgw_url"]}
}

// scrape reads the exposition at addr: every metric family, parsed.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	return mfs
}

// labelValues maps "metric{label}" to the values the label takes.
func labelValues(mfs map[string]*dto.MetricFamily) map[string][]string {
	out := map[string][]string{}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				k := name + "{" + lp.GetName() + "}"
				if !slices.Contains(out[k], lp.GetValue()) {
					out[k] = append(out[k], lp.GetValue())
				}
			}
		}
	}
	return out
}

// TestMetricsWithoutPerCallLabels scrapes a gateway with every role, with one call up
// and then with three: no label takes a value the third call did not already have with
// the first (a label per call grows without bound, and hands call data to whoever
// scrapes), and no label value names a call. /metrics is on its own listener
// (METRICS_ADDR) and not on the main one.
func TestMetricsWithoutPerCallLabels(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: "uas", RTPEcho: true})
	cfg := testConfig(t, r.Addr)
	cfg.MetricsAddr = "127.0.0.1:0"
	// The media URL must name the listener, so it is opened first.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	hard, stop := context.WithCancel(context.Background())
	app, err := Build(hard, cfg, slog.New(slog.DiscardHandler), WithListener(l))
	if err != nil {
		stop()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- app.Run(hard, hard) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	base := "http://" + app.Addr().String()
	end := time.Now().Add(15 * time.Second)
	for code, _ := get(t, base+"/readyz"); code != http.StatusOK; code, _ = get(t, base+"/readyz") {
		if time.Now().After(end) {
			t.Fatalf("/readyz still %d", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(t, base+"/metrics"); code == http.StatusOK {
		t.Errorf("/metrics served on the main listener too, with METRICS_ADDR set")
	}
	maddr := app.MetricsAddr().String()
	if maddr == app.Addr().String() {
		t.Fatalf("metrics on the main listener %s", maddr)
	}

	target := "sip:service@" + sipp.Addr
	var calls [][]string
	calls = append(calls, callUp(t, app, "players/metrics1/audio", target))
	one := labelValues(scrape(t, maddr))
	for i := 2; i <= 3; i++ {
		calls = append(calls, callUp(t, app, fmt.Sprintf("players/metrics%d/audio", i), target))
	}
	// A scan from two untrusted sources: refused at the SIP edge, counted by reason,
	// and nothing of the sources or the requests in a label.
	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		scan(t, src, cfg.SIPListenUDP, 300)
	}
	three := scrape(t, maddr)
	if _, ok := three["mediagw_terminations"]; !ok {
		t.Fatalf("no mediagw_terminations: the scrape is not of this gateway")
	}
	for k, vals := range labelValues(three) {
		for _, v := range vals {
			if !slices.Contains(one[k], v) {
				t.Errorf("%s=%q appeared with more calls: a label that grows with calls", k, v)
			}
			if strings.Contains(v, "127.0.0.2") || strings.Contains(v, "127.0.0.3") || strings.Contains(v, "scanned") {
				t.Errorf("%s=%q names a scanner or its requests", k, v)
			}
			for _, c := range calls {
				for _, id := range c {
					if id != "" && strings.Contains(v, id) {
						t.Errorf("%s=%q names a call (%q)", k, v, id)
					}
				}
			}
		}
	}
}

// scan sends n INVITEs to different users from ip to the gateway's SIP address, as a
// scanner does (what comes back is left unread).
func scan(t *testing.T, ip, to string, n int) {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ra, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprintf("scanned%d", i)
		msg := "INVITE sip:" + id + "@" + to + " SIP/2.0\r\nVia: SIP/2.0/UDP " + c.LocalAddr().String() +
			";branch=z9hG4bK" + id + "\r\nFrom: <sip:scanner@" + ip + ">;tag=" + id + "\r\nTo: <sip:" + id + "@" + to +
			">\r\nCall-ID: " + id + "@" + ip + "\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.WriteTo([]byte(msg), ra); err != nil {
			t.Fatal(err)
		}
	}
}
