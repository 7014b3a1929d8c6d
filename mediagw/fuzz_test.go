package mediagw

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
)

// fuzzTermination is a termination of a gateway without HTTP, whose far end is a local
// socket and whose browser side is a bare queue (no WebSocket), so the packet paths can
// be driven directly.
func fuzzTermination(f *testing.F) (*termination, *wsConn, netip.AddrPort) {
	return benchTermination(f)
}

func benchTermination(f testing.TB) (*termination, *wsConn, netip.AddrPort) {
	g, err := New(Config{PortMin: 20000, PortMax: 29999, PublicWSURL: "ws://127.0.0.1:1", Secret: testSecret},
		prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	t, err := g.addLocal(AddLocalRequest{Owner: "fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		f.Fatal(err)
	}
	port := far.LocalAddr().(*net.UDPAddr).Port
	if err := t.setPeer(Remote{Address: "127.0.0.1", RTPPort: port, RTCPPort: port,
		PayloadTypes: []PayloadType{{PT: 0, Name: "PCMU", ClockRate: 8000}, {PT: 101, Name: "telephone-event", ClockRate: 8000}}}, false); err != nil {
		f.Fatal(err)
	}
	w := &wsConn{q: make(chan *[]byte, 1), pool: &g.bufs, done: make(chan struct{})}
	t.ws.Store(w)
	f.Cleanup(func() {
		t.ws.Store(nil)
		g.Close()
		far.Close()
	})
	return t, w, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

func packetSeeds(f *testing.F) {
	good := rtpPacket(0, 1, 160, 7, 160)
	ext := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, Extension: true, ExtensionProfile: 0xbede,
		CSRC: []uint32{1, 2}}, Payload: []byte{1, 10, 0, 160}}
	_ = ext.SetExtension(1, []byte{0xaa})
	extb, _ := ext.Marshal()
	padded := append([]byte(nil), good...)
	padded[0] |= 0x20
	padded[len(padded)-1] = 4
	for _, s := range [][]byte{good, extb, padded, rtcpRR(1, 2, 3, 4, 5), good[:11], {0x80}, {}, {0x40, 0},
		rtpPacket(9, 1, 0, 1, 20), append(rtcpRR(1, 2, 3, 4, 5), rtcpRR(1, 2, 3, 4, 5)...), rtcpRR(1, 2, 3, 4, 5)[:9]} {
		f.Add(s)
	}
}

// total is every packet the termination accounted: relayed or dropped.
func total(t *termination) uint64 {
	n := t.c.wsToUDP.rtpPackets.Load() + t.c.wsToUDP.rtcpPackets.Load() +
		t.c.udpToWS.rtpPackets.Load() + t.c.udpToWS.rtcpPackets.Load()
	for i := range t.c.drops {
		n += t.c.drops[i].Load()
	}
	return n
}

// validShape is an independent statement of what may be forwarded: RTCP of version 2
// whose lengths add up, or RTP of version 2 with a negotiated payload type.
func validShape(pkt []byte) bool {
	if len(pkt) < 2 || pkt[0]>>6 != 2 {
		return false
	}
	if pkt[1] >= 192 && pkt[1] <= 223 {
		return len(pkt) >= 8 && len(pkt)%4 == 0
	}
	pt := pkt[1] & 0x7f
	return len(pkt) >= 12 && (pt == 0 || pt == 101)
}

// FuzzWSToRTP drives the browser-to-far-end path: every packet is accounted exactly
// once, and only well-formed packets are forwarded.
func FuzzWSToRTP(f *testing.F) {
	packetSeeds(f)
	t, _, _ := fuzzTermination(f)
	var hdr rtp.Header
	f.Fuzz(func(tt *testing.T, pkt []byte) {
		before, fwd := total(t), t.c.wsToUDP.rtpPackets.Load()+t.c.wsToUDP.rtcpPackets.Load()
		in := append([]byte(nil), pkt...)
		t.fromWS(in, &hdr)
		if total(t) != before+1 {
			tt.Fatalf("packet %x accounted %d times", pkt, total(t)-before)
		}
		if t.c.wsToUDP.rtpPackets.Load()+t.c.wsToUDP.rtcpPackets.Load() > fwd && !validShape(pkt) {
			tt.Fatalf("malformed packet %x forwarded", pkt)
		}
	})
}

// FuzzUDPToWS drives the far-end-to-browser path: accounted once, only well-formed
// packets queued, and queued bytes equal to the datagram.
func FuzzUDPToWS(f *testing.F) {
	packetSeeds(f)
	t, w, far := fuzzTermination(f)
	var hdr rtp.Header
	f.Fuzz(func(tt *testing.T, pkt []byte) {
		before := total(t)
		// The low bits of the first and last bytes pick the socket: RTP or RTCP port (muxed peer,
		// so the same source is valid on both).
		rtcpSock := len(pkt) > 0 && pkt[len(pkt)-1]&1 == 1 && pkt[0]&1 == 1
		t.fromUDP(pkt, far, rtcpSock, &hdr)
		if total(t) != before+1 {
			tt.Fatalf("packet %x accounted %d times", pkt, total(t)-before)
		}
		select {
		case bp := <-w.q:
			if !validShape(pkt) || (rtcpSock && checkRTCP(pkt) != dropNone) {
				tt.Fatalf("malformed packet %x queued (rtcp port %v)", pkt, rtcpSock)
			}
			if !bytes.Equal(*bp, pkt) {
				tt.Fatalf("queued %x, received %x", *bp, pkt)
			}
		default:
		}
	})
}

// FuzzToken: no string but a genuine token for the termination is accepted.
func FuzzToken(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	real := newToken(testSecret, "t-1", now.Add(20*time.Second))
	for _, s := range []string{real, "", ".", "1.", ".abc", "99999999999999999999.x", "1800000060." + strings.Repeat("A", 43),
		real + "=", strings.ToUpper(real)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		err := checkToken(testSecret, "t-1", tok, now, 30*time.Second)
		if err == nil && tok != real {
			t.Fatalf("token %q accepted", tok)
		}
	})
}

// FuzzRemoteJSON: the add-remote body parser and validation never accept an RTCP-range
// payload type, a port out of range or a non-IP address.
func FuzzRemoteJSON(f *testing.F) {
	for _, s := range []string{
		`{"address":"127.0.0.1","rtp_port":4000,"payload_types":[{"pt":0,"name":"PCMU","clock_rate":8000}]}`,
		`{"address":"::1","rtp_port":4000,"rtcp_port":4000,"payload_types":[{"pt":101,"name":"telephone-event","clock_rate":8000}]}`,
		`{"address":"x","rtp_port":-1}`, `{"payload_types":[{"pt":72}]}`, `[]`, `{`, `{"address":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r Remote
		if decodeJSON(body, &r) != nil {
			return
		}
		p, err := newPeerState(r, false)
		if err != nil {
			return
		}
		if !p.rtp.Addr().IsValid() || p.rtp.Port() == 0 || p.rtcp.Port() == 0 {
			t.Fatalf("accepted %s with bad address %v %v", body, p.rtp, p.rtcp)
		}
		for pt := 64; pt <= 95; pt++ {
			if p.pts.ok[pt] {
				t.Fatalf("accepted RTCP-range payload type %d", pt)
			}
		}
	})
}

// FuzzEventSignature: only the genuine signature verifies.
func FuzzEventSignature(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"type":"media_timeout","termination_id":"t-1"}`)
	real := SignEvent(testSecret, now, body)
	for _, s := range []string{real, "", "t=1", "v1=00", "t=1800000000,v1=", "t=1800000000,v1=zz,t=1"} {
		f.Add(s, body)
	}
	f.Fuzz(func(t *testing.T, hdr string, b []byte) {
		if VerifyEvent(testSecret, hdr, b, now) == nil && !(bytes.Equal(b, body) && strings.Contains(hdr, real[strings.Index(real, "v1="):])) {
			t.Fatalf("signature %q accepted for %q", hdr, b)
		}
		if ev, err := decodeEvent(b); err == nil && (ev.Type == "" || ev.TerminationID == "") {
			t.Fatalf("event without type or id accepted: %q", b)
		}
	})
}

// FuzzRTCPReport: the report block reader stays within a validated packet.
func FuzzRTCPReport(f *testing.F) {
	sr := make([]byte, 52)
	sr[0], sr[1], sr[3] = 0x81, 200, 12
	for _, s := range [][]byte{rtcpRR(1, 2, 3, 4, 5), sr, append(sr, rtcpRR(1, 2, 3, 4, 5)...), {0x9f, 201, 0, 1, 0, 0, 0, 0}} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		if checkRTCP(pkt) != dropNone {
			return
		}
		_, _, _, _ = reportBlock(pkt, 0)
		_, _, _, _ = reportBlock(pkt, 2)
	})
}
