package mediagw

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "test-secret-0123456789abcdef"

// deadline is a failure deadline, not a timing assertion: loopback delivers in
// microseconds, and only a broken relay waits this long.
const deadline = 5 * time.Second

// env is one gateway on an httptest server, its client and registry.
type env struct {
	gw     *Gateway
	cl     *Client
	srv    *httptest.Server
	reg    *prometheus.Registry
	wsBase string
}

func newEnv(t *testing.T, mut func(*Config)) *env {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	cfg := Config{PortMin: 20000, PortMax: 29999, PublicWSURL: "ws://" + srv.Listener.Addr().String(),
		Secret: testSecret, SweepInterval: 20 * time.Millisecond,
		// Tests send bursts faster than real calls; a deep queue keeps them about order
		// and counters (TestSlowReaderDropsNotBlocks sets a small one on purpose).
		WSQueue: 4096}
	if mut != nil {
		mut(&cfg)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	gw, err := New(cfg, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/v1/", gw.APIHandler())
	mux.Handle("/media/", gw.MediaHandler())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		srv.Close()
	})
	cl, err := NewClient(ClientConfig{BaseURL: srv.URL, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return &env{gw: gw, cl: cl, srv: srv, reg: reg, wsBase: cfg.PublicWSURL}
}

// peer is a far end: an RTP and an RTCP socket on loopback.
type peer struct {
	rtp, rtcp *net.UDPConn
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	p := &peer{}
	for i := 0; i < 50; i++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		if port%2 == 1 || port == 65534 {
			c.Close()
			continue
		}
		c2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port + 1})
		if err != nil {
			c.Close()
			continue
		}
		p.rtp, p.rtcp = c, c2
		_ = c.SetReadBuffer(1 << 21)
		t.Cleanup(func() { c.Close(); c2.Close() })
		return p
	}
	t.Fatal("no even port pair for the peer")
	return nil
}

func (p *peer) remote(pts ...PayloadType) Remote {
	if len(pts) == 0 {
		pts = []PayloadType{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 8, Name: "PCMA", ClockRate: 8000},
			{PT: 101, Name: "telephone-event", ClockRate: 8000}}
	}
	a := p.rtp.LocalAddr().(*net.UDPAddr)
	return Remote{Address: "127.0.0.1", RTPPort: a.Port, RTCPPort: a.Port + 1, PayloadTypes: pts}
}

func recvUDP(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 2000)
	_ = c.SetReadDeadline(time.Now().Add(deadline))
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("far end read: %v", err)
	}
	return buf[:n]
}

// call sets up a termination with the peer as remote and an attached WebSocket.
type call struct {
	id     string
	local  LocalTermination
	gwRTP  *net.UDPAddr
	gwRTCP *net.UDPAddr
	ws     *websocket.Conn
	url    string
}

func (e *env) newCall(t *testing.T, p *peer, attach bool) *call {
	t.Helper()
	ctx := context.Background()
	lt, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "test", CallID: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	c := &call{id: lt.ID, local: *lt, gwRTP: &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTPPort},
		gwRTCP: &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTCPPort}}
	if p == nil {
		return c
	}
	mu, err := e.cl.AddRemote(ctx, lt.ID, p.remote())
	if err != nil {
		t.Fatal(err)
	}
	c.url = mu.URL
	if attach {
		c.ws = dialWS(t, mu.URL)
		// The client sees the 101 a moment before the gateway has registered the
		// connection; far-end packets in between are dropped as not_attached.
		eventually(t, "attached", func() bool { return mustGet(t, e, c.id).WSAttached })
	}
	return c
}

func dialWS(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func recvWS(t *testing.T, ws *websocket.Conn) []byte {
	t.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(deadline))
	mt, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("ws read: %v", err)
	}
	if mt != websocket.BinaryMessage {
		t.Fatalf("ws message type %d, want binary", mt)
	}
	return b
}

func sendWS(t *testing.T, ws *websocket.Conn, b []byte) {
	t.Helper()
	if err := ws.WriteMessage(websocket.BinaryMessage, b); err != nil {
		t.Fatalf("ws write: %v", err)
	}
}

// rtpPacket builds a G.711 packet of payload size n whose payload starts with seq.
func rtpPacket(pt uint8, seq uint16, ts, ssrc uint32, n int) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc},
		Payload: make([]byte, n)}
	for i := range p.Payload {
		p.Payload[i] = byte(int(seq) + i)
	}
	b, _ := p.Marshal()
	return b
}

// rtcpRR builds a receiver report with one block about ssrc.
func rtcpRR(sender, about uint32, fraction uint8, lost uint32, jitter uint32) []byte {
	b := make([]byte, 32)
	b[0] = 0x81
	b[1] = 201
	binary.BigEndian.PutUint16(b[2:], 7)
	binary.BigEndian.PutUint32(b[4:], sender)
	binary.BigEndian.PutUint32(b[8:], about)
	binary.BigEndian.PutUint32(b[12:], uint32(fraction)<<24|lost&0xffffff)
	binary.BigEndian.PutUint32(b[20:], jitter)
	return b
}

func mustGet(t *testing.T, e *env, id string) *Termination {
	t.Helper()
	tm, err := e.cl.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// eventually polls cond until it holds or the failure deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not reached within %s", what, deadline)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wsURLFor(base, id, token string) string {
	return strings.TrimRight(base, "/") + "/media/" + id + "?token=" + token
}

func c2addr(lt *LocalTermination) *net.UDPAddr {
	return &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTPPort}
}
