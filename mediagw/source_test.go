package mediagw

// Tests of which far-end source a termination accepts (source.go): the SDP's own address
// and port first, another source only for an SDP address that may be behind NAT, after
// the window, once.

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"
)

// endLatchWindow ends the window of the termination's current remote as if LatchWindow
// had passed, so tests need not wait for it.
func endLatchWindow(t *testing.T, e *env, id string) {
	t.Helper()
	tm := e.gw.lookup(id)
	if tm == nil {
		t.Fatalf("termination %s not found", id)
	}
	tm.peer.Load().lock.latchAfter.Store(0)
}

func TestMayBeBehindNAT(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"10.89.0.7": true, "172.16.3.4": true, "192.168.1.10": true, "100.64.0.1": true,
		"169.254.10.1": true, "0.0.0.0": true, "fd00::1": true, "fe80::1": true, "::ffff:10.0.0.1": true,
		"127.0.0.1": false, "127.0.0.2": false, "::1": false, "198.51.100.20": false,
		"203.0.113.7": false, "8.8.8.8": false, "2001:db8::1": false, "100.128.0.1": false,
	} {
		if got := mayBeBehindNAT(netip.MustParseAddr(addr)); got != want {
			t.Errorf("mayBeBehindNAT(%s) = %v, want %v", addr, got, want)
		}
	}
}

// The decision alone, packet by packet, for each kind of SDP address.
func TestCheckSource(t *testing.T) {
	t.Parallel()
	sdpPriv := netip.MustParseAddrPort("10.89.0.7:4000")
	sdpLoop := netip.MustParseAddrPort("127.0.0.1:4000")
	nat := netip.MustParseAddrPort("198.51.100.20:61000")
	spray := netip.MustParseAddrPort("127.0.0.2:5000")
	type step struct {
		src       netip.AddrPort
		endWindow bool // the window has passed before this packet
		want      dropReason
	}
	cases := []struct {
		name    string
		sdp     netip.AddrPort
		noLatch bool
		steps   []step
		latched netip.AddrPort
	}{
		{"loopback: only the sdp address", sdpLoop, false, []step{
			{spray, false, dropForeignSource},
			{spray, true, dropForeignSource}, // never latched, however long it waits
			{sdpLoop, false, dropNone},
			{sdpLoop, false, dropNone},
			{spray, false, dropForeignSource},
		}, sdpLoop},
		{"private: the sdp address speaks first and keeps the port", sdpPriv, false, []step{
			{spray, false, dropLatchWindow},
			{sdpPriv, false, dropNone},
			{nat, true, dropForeignSource},
		}, sdpPriv},
		{"private: silent sdp address, latched once after the window", sdpPriv, false, []step{
			{spray, false, dropLatchWindow},
			{nat, true, dropNone},
			{nat, false, dropNone},
			{spray, false, dropForeignSource},
			{sdpPriv, false, dropForeignSource}, // latched once: not even the SDP's address now
		}, nat},
		{"private with latching off", sdpPriv, true, []step{
			{nat, true, dropForeignSource},
			{sdpPriv, false, dropNone},
		}, sdpPriv},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			term := &termination{log: slog.New(slog.DiscardHandler)}
			l := newSourceLock(&Config{LatchWindow: time.Hour, DisableLatching: tc.noLatch}, tc.sdp.Addr(), time.Now())
			for i, s := range tc.steps {
				if s.endWindow {
					l.latchAfter.Store(0)
				}
				if got := term.checkSource(l, &l.rtp, tc.sdp, s.src); got != s.want {
					t.Fatalf("step %d from %s: %s, want %s", i, s.src, dropNames[got], dropNames[s.want])
				}
			}
			if got := l.rtp.Load(); got == nil || *got != tc.latched {
				t.Errorf("accepted source %v, want %s", got, tc.latched)
			}
		})
	}
}

// A far end whose SDP names a loopback address (reachable as it is) must send from it:
// another source is never latched, not first and not later, and the browser's audio goes
// only to the SDP's address.
func TestSourceLoopbackNeverLatches(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.LatchWindow = time.Millisecond })
	p := newPeer(t)
	c := e.newCall(t, p, true)
	attacker := newPeerOn(t, "127.0.0.2")
	// Well past the window: a source that is not the SDP's is still refused.
	if _, err := attacker.rtp.WriteToUDP(rtpPacket(0, 1, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "foreign drop", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropForeignSource] == 1 })
	sendWS(t, c.ws, rtpPacket(0, 5, 0, 1, 160))
	if got := recvUDP(t, p.rtp); !bytes.Equal(got, rtpPacket(0, 5, 0, 1, 160)) {
		t.Fatalf("sdp address got %x", got)
	}
	if _, err := p.rtp.WriteToUDP(rtpPacket(0, 2, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	if got := recvWS(t, c.ws); !bytes.Equal(got, rtpPacket(0, 2, 0, 9, 160)) {
		t.Fatalf("browser got %x", got)
	}
	if tm := mustGet(t, e, c.id); tm.LatchedRTP != p.rtp.LocalAddr().String() {
		t.Errorf("accepted source %q, want the sdp's %s", tm.LatchedRTP, p.rtp.LocalAddr())
	}
}

// A far end whose SDP names a private address (the compose subnet's) and that sends from
// elsewhere (its NAT's public side, here a loopback socket) is latched once the window
// has passed, not before; after that nobody else is, and a new remote address starts
// over.
func TestSourcePrivateLatchesAfterWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.LatchWindow = time.Hour })
	nat := newPeer(t) // where the far end's packets really come from
	c := e.newCall(t, nil, false)
	r := nat.remote()
	r.Address = "10.89.0.77" // the SDP's private address: nothing will come from it
	mu, err := e.cl.AddRemote(context.Background(), c.id, r)
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, mu.URL)
	eventually(t, "attached", func() bool { return mustGet(t, e, c.id).WSAttached })
	if _, err := nat.rtp.WriteToUDP(rtpPacket(0, 1, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "latch_window drop", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropLatchWindow] == 1 })
	endLatchWindow(t, e, c.id)
	if _, err := nat.rtp.WriteToUDP(rtpPacket(0, 2, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	if got := recvWS(t, ws); !bytes.Equal(got, rtpPacket(0, 2, 0, 9, 160)) {
		t.Fatalf("browser got %x", got)
	}
	// The browser's packets now go to the latched source, not to the SDP's address.
	sendWS(t, ws, rtpPacket(0, 5, 0, 1, 160))
	if got := recvUDP(t, nat.rtp); !bytes.Equal(got, rtpPacket(0, 5, 0, 1, 160)) {
		t.Fatalf("latched source got %x", got)
	}
	other := newPeerOn(t, "127.0.0.2")
	if _, err := other.rtp.WriteToUDP(rtpPacket(0, 3, 0, 7, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "foreign drop", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropForeignSource] == 1 })
	if tm := mustGet(t, e, c.id); tm.LatchedRTP != nat.rtp.LocalAddr().String() {
		t.Errorf("latched %q, want %s", tm.LatchedRTP, nat.rtp.LocalAddr())
	}
	// A re-INVITE with a new (reachable) address: a new lock; the old source is foreign,
	// the new address is taken.
	p2 := newPeer(t)
	r2 := p2.remote()
	if _, err := e.cl.Modify(context.Background(), c.id, ModifyRequest{Address: &r2.Address, RTPPort: &r2.RTPPort}); err != nil {
		t.Fatal(err)
	}
	if tm := mustGet(t, e, c.id); tm.LatchedRTP != "" {
		t.Errorf("after a new remote the lock is %q, want none", tm.LatchedRTP)
	}
	if _, err := nat.rtp.WriteToUDP(rtpPacket(0, 4, 0, 9, 160), c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old source foreign", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropForeignSource] == 2 })
	sendWS(t, ws, rtpPacket(0, 6, 160, 1, 160))
	if got := recvUDP(t, p2.rtp); !bytes.Equal(got, rtpPacket(0, 6, 160, 1, 160)) {
		t.Fatalf("new remote got %x", got)
	}
}

// The window is real time: a far end behind NAT that keeps sending is heard once it has
// passed (it is short here; the test does not depend on when exactly).
func TestSourceWindowPasses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) { c.LatchWindow = 50 * time.Millisecond })
	nat := newPeer(t)
	c := e.newCall(t, nil, false)
	r := nat.remote()
	r.Address = "192.168.77.7"
	mu, err := e.cl.AddRemote(context.Background(), c.id, r)
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, mu.URL)
	eventually(t, "attached", func() bool { return mustGet(t, e, c.id).WSAttached })
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for i := 0; mustGetQuiet(e, c.id) == ""; i++ {
			_, _ = nat.rtp.WriteToUDP(rtpPacket(0, uint16(i), uint32(160*i), 9, 160), c.gwRTP)
			<-tick.C
		}
	}()
	recvWS(t, ws)
	<-done
	if tm := mustGet(t, e, c.id); tm.LatchedRTP != nat.rtp.LocalAddr().String() {
		t.Errorf("latched %q, want %s", tm.LatchedRTP, nat.rtp.LocalAddr())
	}
}

// mustGetQuiet is the termination's latched RTP source, "" also when it is gone (for
// goroutines, which may not call t.Fatal).
func mustGetQuiet(e *env, id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	tm, err := e.cl.Get(ctx, id)
	if err != nil {
		return "gone"
	}
	return tm.LatchedRTP
}

// newPeerOn is a far end (or an attacker) on another loopback address: a different
// source address, as a third party on the network would have.
func newPeerOn(t *testing.T, ip string) *peer {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); c2.Close() })
	return &peer{rtp: c, rtcp: c2}
}
