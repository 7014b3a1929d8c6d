package mediagw

// Tests of what the relay refuses: malformed, oversized, foreign and unroutable packets
// are dropped and counted by reason, and a slow browser loses packets without slowing
// anyone.

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestBadPacketsDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.MaxPacket = 400; c.DisableLatching = true })
	good := rtpPacket(0, 1, 0, 1, 160)
	badVersion := append([]byte(nil), good...)
	badVersion[0] = 0x40
	csrcTrunc := append([]byte(nil), good[:14]...)
	csrcTrunc[0] |= 0x03 // three CSRCs announced, not present
	extTrunc := append([]byte(nil), good[:14]...)
	extTrunc[0] |= 0x10 // extension announced, header cut
	badPad := append([]byte(nil), good...)
	badPad[0] |= 0x20
	badPad[len(badPad)-1] = 250 // more padding than the packet
	rtcpShort := rtcpRR(1, 2, 0, 0, 0)[:20]
	rtcpBadLen := rtcpRR(1, 2, 0, 0, 0)
	rtcpBadLen[3] = 12
	cases := []struct {
		name   string
		pkt    []byte
		reason string
	}{
		{"empty", []byte{}, DropTruncated},
		{"one byte", []byte{0x80}, DropTruncated},
		{"short header", good[:11], DropTruncated},
		{"csrc truncated", csrcTrunc, DropTruncated},
		{"extension truncated", extTrunc, DropTruncated},
		{"padding beyond packet", badPad, DropTruncated},
		{"wrong version", badVersion, DropBadVersion},
		{"unknown payload type", rtpPacket(9, 1, 0, 1, 160), DropUnknownPT},
		{"oversized", rtpPacket(0, 1, 0, 1, 401), DropOversized},
		{"rtcp truncated", rtcpShort, DropTruncated},
		{"rtcp bad length", rtcpBadLen, DropTruncated},
	}
	for _, side := range []string{"ws", "udp"} {
		t.Run(side, func(t *testing.T) {
			t.Parallel()
			p := newPeer(t)
			c := e.newCall(t, p, true)
			for i, tc := range cases {
				if side == "ws" {
					if len(tc.pkt) == 0 {
						sendWS(t, c.ws, tc.pkt)
					} else {
						sendWS(t, c.ws, tc.pkt)
					}
				} else {
					if _, err := p.rtp.WriteToUDP(tc.pkt, c.gwRTP); err != nil {
						t.Fatal(err)
					}
				}
				want := uint64(0)
				for _, c2 := range cases[:i+1] {
					if c2.reason == tc.reason {
						want++
					}
				}
				eventually(t, tc.name, func() bool { return mustGet(t, e, c.id).Counters.Drops[tc.reason] == want })
			}
			if side == "ws" {
				if err := c.ws.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
					t.Fatal(err)
				}
				eventually(t, "text", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropNotBinary] == 1 })
				// Nothing bad reached the far end: the next datagram is the good one.
				sendWS(t, c.ws, good)
				if got := recvUDP(t, p.rtp); !bytes.Equal(got, good) {
					t.Fatalf("far end got %x first, want the good packet", got)
				}
			} else {
				foreign := newPeer(t)
				if _, err := foreign.rtp.WriteToUDP(good, c.gwRTP); err != nil {
					t.Fatal(err)
				}
				eventually(t, "foreign", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropForeignSource] == 1 })
				if _, err := p.rtp.WriteToUDP(good, c.gwRTP); err != nil {
					t.Fatal(err)
				}
				if got := recvWS(t, c.ws); !bytes.Equal(got, good) {
					t.Fatalf("browser got %x first, want the good packet", got)
				}
			}
			eventually(t, "good packet counted", func() bool {
				cs := mustGet(t, e, c.id).Counters
				return cs.WSToUDP.RTPPackets+cs.UDPToWS.RTPPackets > 0
			})
			cs := mustGet(t, e, c.id).Counters
			if cs.WSToUDP.RTPPackets+cs.UDPToWS.RTPPackets != 1 || cs.WSToUDP.RTCPPackets+cs.UDPToWS.RTCPPackets != 0 {
				t.Errorf("forwarded %+v %+v, want exactly the one good packet", cs.WSToUDP, cs.UDPToWS)
			}
		})
	}
}

func TestNoRemoteAndNotAttached(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	c := e.newCall(t, nil, false)
	p := newPeer(t)
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 1, 0, 1, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "no_remote", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropNoRemote] == 1 })
	if _, err := e.cl.AddRemote(context.Background(), c.id, p.remote()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 2, 0, 1, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "not_attached", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropNotAttached] == 1 })
}

// A browser that does not read loses packets; the UDP side of its call keeps reading and
// other calls are not slowed.
func TestSlowReaderDropsNotBlocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.WSQueue = 8 })
	p := newPeer(t)
	slow := e.newCall(t, p, true) // never reads its WebSocket
	p2 := newPeer(t)
	fast := e.newCall(t, p2, true)
	big := rtpPacket(0, 1, 0, 1, 1400)
	// Far more than the TCP buffers toward the browser hold.
	const flood = 20000
	for i := 0; i < flood; i++ {
		if _, err := p.rtp.WriteToUDP(big, slow.gwRTP); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			time.Sleep(time.Millisecond) // stay within the socket receive buffer
		}
	}
	eventually(t, "queue_full drops", func() bool { return mustGet(t, e, slow.id).Counters.Drops[DropQueueFull] > 0 })
	// The slow call's UDP reader is not blocked behind its WebSocket: it still reads and
	// judges new datagrams (an unknown payload type here, counted as such).
	eventually(t, "slow call's udp reader still reading", func() bool {
		if _, err := p.rtp.WriteToUDP(rtpPacket(9, 1, 0, 1, 160), slow.gwRTP); err != nil {
			t.Fatal(err)
		}
		return mustGet(t, e, slow.id).Counters.Drops[DropUnknownPT] > 0
	})
	if _, err := p2.rtp.WriteToUDP(rtpPacket(0, 7, 0, 2, 160), fast.gwRTP); err != nil {
		t.Fatal(err)
	}
	if got := recvWS(t, fast.ws); !bytes.Equal(got, rtpPacket(0, 7, 0, 2, 160)) {
		t.Fatalf("other call got %x", got)
	}
}
