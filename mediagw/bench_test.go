package mediagw

import (
	"net"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// BenchmarkPacketPath (go test -run X -bench PacketPath ./mediagw) measures the gateway's per-packet work on both paths (checks,
// latching, statistics, counters, and the UDP send or the queue hand-off) against the
// bare operation a forwarder does anyway (a UDP send, or a channel hand-off), in the
// same run, and reports the ratio.
func BenchmarkPacketPath(b *testing.B) {
	t, w, far := benchTermination(b)
	pkt := rtpPacket(0, 1, 160, 7, 160)
	var hdr rtp.Header
	raw, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	drain := func() {
		for {
			select {
			case bp := <-w.q:
				t.g.bufs.Put(bp)
			default:
				return
			}
		}
	}
	b.Run("ws_to_udp", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			pkt[3] = byte(i)
			pkt[2] = byte(i >> 8)
			t.fromWS(pkt, &hdr)
		}
		gw := time.Since(start)
		start = time.Now()
		for i := 0; i < b.N; i++ {
			_, _ = raw.WriteToUDPAddrPort(pkt, far)
		}
		base := time.Since(start)
		b.ReportMetric(float64(gw)/float64(base), "x_bare_udp_send")
	})
	b.Run("udp_to_ws", func(b *testing.B) {
		b.ReportAllocs()
		q := make(chan []byte, 1)
		buf := make([]byte, len(pkt))
		start := time.Now()
		for i := 0; i < b.N; i++ {
			pkt[3] = byte(i)
			pkt[2] = byte(i >> 8)
			t.fromUDP(pkt, far, false, &hdr)
			drain()
		}
		gw := time.Since(start)
		start = time.Now()
		for i := 0; i < b.N; i++ {
			copy(buf, pkt)
			select {
			case q <- buf:
			default:
			}
			<-q
		}
		base := time.Since(start)
		b.ReportMetric(float64(gw)/float64(base), "x_bare_copy_handoff")
	})
}
