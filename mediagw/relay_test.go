package mediagw

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestRelayBothWaysInOrder(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	const n = 300
	// Browser to far end, read concurrently so the far end's socket buffer is no limit.
	got := make(chan []byte, n)
	go func() {
		buf := make([]byte, 2000)
		for i := 0; i < n; i++ {
			_ = p.rtp.SetReadDeadline(time.Now().Add(deadline))
			k, _, err := p.rtp.ReadFromUDP(buf)
			if err != nil {
				close(got)
				return
			}
			got <- append([]byte(nil), buf[:k]...)
		}
	}()
	for i := 0; i < n; i++ {
		sendWS(t, c.ws, rtpPacket(0, uint16(1000+i), uint32(160*i), 0xaaaa, 160))
	}
	for i := 0; i < n; i++ {
		got, ok := <-got
		if !ok {
			t.Fatalf("far end got only %d packets", i)
		}
		if want := rtpPacket(0, uint16(1000+i), uint32(160*i), 0xaaaa, 160); !bytes.Equal(got, want) {
			t.Fatalf("far end packet %d differs:\n got %x\nwant %x", i, got, want)
		}
	}
	// Far end to browser, from the negotiated address.
	for i := 0; i < n; i++ {
		if _, err := p.rtp.WriteToUDP(rtpPacket(8, uint16(65500+i), uint32(160*i), 0xbbbb, 160), c.gwRTP); err != nil {
			t.Fatal(err)
		}
		// Paced: the queue toward the browser is bounded on purpose (TestSlowReaderDropsNotBlocks).
		time.Sleep(200 * time.Microsecond)
	}
	for i := 0; i < n; i++ {
		got := recvWS(t, c.ws)
		if want := rtpPacket(8, uint16(65500+i), uint32(160*i), 0xbbbb, 160); !bytes.Equal(got, want) {
			t.Fatalf("browser packet %d differs:\n got %x\nwant %x", i, got, want)
		}
	}
	// RTCP both ways: browser RTCP goes to the far end's RTCP port, and far-end RTCP
	// comes back over the WebSocket.
	rrWS := rtcpRR(0xaaaa, 0xbbbb, 0, 0, 10)
	sendWS(t, c.ws, rrWS)
	if got := recvUDP(t, p.rtcp); !bytes.Equal(got, rrWS) {
		t.Fatalf("rtcp at far end %x, want %x", got, rrWS)
	}
	rrUDP := rtcpRR(0xbbbb, 0xaaaa, 64, 3, 80)
	if _, err := p.rtcp.WriteToUDP(rrUDP, c.gwRTCP); err != nil {
		t.Fatal(err)
	}
	if got := recvWS(t, c.ws); !bytes.Equal(got, rrUDP) {
		t.Fatalf("rtcp at browser %x, want %x", got, rrUDP)
	}

	// The counter is bumped right after the packet is queued, so it may trail the
	// delivery by a moment.
	eventually(t, "all counted", func() bool {
		cs := mustGet(t, e, c.id).Counters
		return cs.UDPToWS.RTCPPackets == 1 && cs.WSToUDP.RTCPPackets == 1 && cs.WSToUDP.RTPPackets == n && cs.UDPToWS.RTPPackets == n
	})
	tm := mustGet(t, e, c.id)
	cs := tm.Counters
	if cs.WSToUDP.RTPPackets != n || cs.WSToUDP.RTPBytes != n*172 || cs.WSToUDP.RTCPPackets != 1 {
		t.Errorf("ws_to_udp %+v", cs.WSToUDP)
	}
	if cs.UDPToWS.RTPPackets != n || cs.UDPToWS.RTPBytes != n*172 || cs.UDPToWS.RTCPPackets != 1 || cs.UDPToWS.RTCPBytes != 32 {
		t.Errorf("udp_to_ws %+v", cs.UDPToWS)
	}
	if len(cs.Drops) != 0 {
		t.Errorf("drops %v, want none", cs.Drops)
	}
	if cs.FromUDP == nil || cs.FromUDP.Expected != n || cs.FromUDP.Lost != 0 || cs.FromUDP.SSRC != 0xbbbb {
		t.Errorf("from_udp %+v (sequence wrapped at 65535: expected must still be %d)", cs.FromUDP, n)
	}
	if cs.FromWS == nil || cs.FromWS.Expected != n || cs.FromWS.Lost != 0 {
		t.Errorf("from_ws %+v", cs.FromWS)
	}
	if r := cs.RemoteReport; r == nil || r.CumulativeLost != 3 || r.FractionLost != 0.25 || r.JitterMS != 10 {
		t.Errorf("remote report %+v, want 3 lost, 0.25, 10 ms", r)
	}
	if !tm.WSAttached || tm.LatchedRTP != p.rtp.LocalAddr().String() {
		t.Errorf("attached %v latched %q", tm.WSAttached, tm.LatchedRTP)
	}
}

func TestLossCounted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	// Sequence 0..99 with 10 missing: loss is estimated as RFC 3550 A.3 does.
	for i := 0; i < 100; i++ {
		if i%10 == 5 {
			continue
		}
		if _, err := p.rtp.WriteToUDP(rtpPacket(0, uint16(i), uint32(160*i), 7, 160), c.gwRTP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond) // paced: the WebSocket queue is bounded on purpose
	}
	for i := 0; i < 90; i++ {
		recvWS(t, c.ws)
	}
	st := mustGet(t, e, c.id).Counters.FromUDP
	if st.Expected != 100 || st.Received != 90 || st.Lost != 10 {
		t.Errorf("from_udp %+v, want expected 100 received 90 lost 10", st)
	}
}

// With latching off only the negotiated address is accepted (TestCheckSource has the
// private address case).
func TestStrictSource(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.DisableLatching = true })
	p := newPeer(t)
	c := e.newCall(t, p, true)
	other := newPeer(t)
	if _, err := other.rtp.WriteToUDP(rtpPacket(0, 1, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 2, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	got := recvWS(t, c.ws)
	if !bytes.Equal(got, rtpPacket(0, 2, 0, 9, 160)) {
		t.Fatalf("browser got %x, want the negotiated source's packet", got)
	}
	if n := mustGet(t, e, c.id).Counters.Drops[DropForeignSource]; n != 1 {
		t.Fatalf("foreign_source drops %d, want 1", n)
	}
}

func TestHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	ctx := context.Background()
	hold := true
	tm, err := e.cl.Modify(ctx, c.id, ModifyRequest{Hold: &hold})
	if err != nil || !tm.Hold {
		t.Fatalf("modify hold: %v %+v", err, tm)
	}
	sendWS(t, c.ws, rtpPacket(0, 1, 0, 1, 160))
	eventually(t, "held drop", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropHeld] == 1 })
	// The far end's packets still reach the browser on hold.
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 1, 0, 2, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	recvWS(t, c.ws)
	hold = false
	if _, err := e.cl.Modify(ctx, c.id, ModifyRequest{Hold: &hold}); err != nil {
		t.Fatal(err)
	}
	sendWS(t, c.ws, rtpPacket(0, 2, 160, 1, 160))
	if got := recvUDP(t, p.rtp); !bytes.Equal(got, rtpPacket(0, 2, 160, 1, 160)) {
		t.Fatalf("after resume the far end got %x", got)
	}
}

func TestPortsEvenPairsAndReuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.PortMin, c.PortMax = 19001, 19006 }) // pairs 19002, 19004; 19006 has no +1 in range
	ctx := context.Background()
	var ids []string
	for i := 0; i < 2; i++ {
		lt, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "o"})
		if err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
		if lt.RTPPort%2 != 0 || lt.RTCPPort != lt.RTPPort+1 || lt.RTPPort < 19002 || lt.RTCPPort > 19006 {
			t.Fatalf("ports %d/%d", lt.RTPPort, lt.RTCPPort)
		}
		// Both ports are really bound by the gateway.
		for _, port := range []int{lt.RTPPort, lt.RTCPPort} {
			if c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err == nil {
				c.Close()
				t.Fatalf("port %d not bound by the gateway", port)
			}
		}
		ids = append(ids, lt.ID)
	}
	if _, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "o"}); !isAPI(err, 503, ErrUnavailable) {
		t.Fatalf("third add: %v, want 503 unavailable", err)
	}
	if err := e.cl.Delete(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "o"}); err != nil {
		t.Fatalf("add after delete: %v", err)
	}
}

// With rtcp-mux (RFC 5761) the far end's RTCP shares its RTP port both ways.
func TestRTCPMux(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, nil, false)
	r := p.remote()
	r.RTCPPort = r.RTPPort
	mu, err := e.cl.AddRemote(context.Background(), c.id, r)
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, mu.URL)
	eventually(t, "attached", func() bool { return mustGet(t, e, c.id).WSAttached })
	rr := rtcpRR(1, 2, 0, 0, 0)
	sendWS(t, ws, rr)
	if got := recvUDP(t, p.rtp); !bytes.Equal(got, rr) {
		t.Fatalf("far rtp port got %x, want the RTCP", got)
	}
	if _, err := p.rtp.WriteToUDP(rr, c.gwRTP); err != nil {
		t.Fatal(err)
	}
	if got := recvWS(t, ws); !bytes.Equal(got, rr) {
		t.Fatalf("browser got %x", got)
	}
	eventually(t, "rtcp counted", func() bool {
		cs := mustGet(t, e, c.id).Counters
		return cs.WSToUDP.RTCPPackets == 1 && cs.UDPToWS.RTCPPackets == 1 && cs.UDPToWS.RTPPackets == 0
	})
}

func TestOriginCheckAndDTMFQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://app.example.com"} })
	p := newPeer(t)
	c := e.newCall(t, p, false)
	h := http.Header{"Origin": {"https://evil.example.com"}}
	if _, resp, err := websocket.DefaultDialer.Dial(c.url, h); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: %v", err)
	}
	h.Set("Origin", "https://app.example.com")
	ws, _, err := websocket.DefaultDialer.Dial(c.url, h)
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	ws.Close()
	ctx := context.Background()
	if err := e.cl.SendDTMF(ctx, c.id, DTMFRequest{Digits: strings.Repeat("1", 64), DurationMS: 5000}); err != nil {
		t.Fatal(err)
	}
	// The sender has taken the first (5 s) digit at most: 63 or 64 pending, +2 is over.
	if err := e.cl.SendDTMF(ctx, c.id, DTMFRequest{Digits: "22"}); !isAPI(err, 409, ErrConflict) {
		t.Fatalf("digits over the queue limit: %v, want 409", err)
	}
	// Deleting a termination in the middle of a long digit stops the sender.
	if err := e.cl.Delete(ctx, c.id); err != nil {
		t.Fatal(err)
	}
}
