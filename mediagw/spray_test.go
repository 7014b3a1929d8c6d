package mediagw

// The RTP bleed attack (issue: the SIP and RTP edge): a third party sprays valid RTP at
// every port of the relay's range, during call setup and mid-call, while the real far end
// sends a tone. The page must hear only the far end's tone, the far end must get the
// page's audio and the attacker nothing, and the spray is counted as dropped.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"dsmgw/internal/testpeer"
)

const (
	farToneHz   = 1000 // what the real far end sends
	sprayToneHz = 400  // what the attacker sends
	toneAmp     = 8000
)

// pcmuTone is one 20 ms PCMU packet of a sine at freq, phase-continuous over n.
func pcmuTone(freq float64, n int, ssrc uint32) []byte {
	pcm := make([]int16, 160)
	testpeer.Sine(pcm, 8000, freq, toneAmp, 160*n)
	payload := make([]byte, 160)
	for i, s := range pcm {
		payload[i] = g711.EncodeUlawFrame(s)
	}
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(n),
		Timestamp: uint32(160 * n), SSRC: ssrc}, Payload: payload}
	b, _ := p.Marshal()
	return b
}

// sprayEnv is a gateway of its own on a loopback address of its own with a narrow port
// range, so the spray reaches this test's relay only, never another test's.
func sprayEnv(t *testing.T, mut func(*Config)) (*env, int, int) {
	t.Helper()
	bind := fmt.Sprintf("127.%d.%d.%d", 100+rand.IntN(100), rand.IntN(256), 1+rand.IntN(254))
	base := 20000 + 2*rand.IntN(4900)
	e := newEnv(t, func(c *Config) {
		c.BindAddr, c.PortMin, c.PortMax = bind, base, base+19
		if mut != nil {
			mut(c)
		}
	})
	return e, base, base + 19
}

// sprayer sends valid RTP (negotiated payload type, a tone of its own) from a third
// address at every port of [min, max], over and over, until stopped.
type sprayer struct {
	conn *net.UDPConn
	stop chan struct{}
	wg   sync.WaitGroup
	sent atomic.Int64
}

func startSpray(t *testing.T, ip string, min, max int) *sprayer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	s := &sprayer{conn: conn}
	t.Cleanup(func() { s.halt(); conn.Close() })
	s.resume(ip, min, max)
	return s
}

// resume starts (again) spraying.
func (s *sprayer) resume(ip string, min, max int) {
	s.stop = make(chan struct{})
	s.wg.Add(1)
	stop := s.stop
	go func() {
		defer s.wg.Done()
		for n := 0; ; n++ {
			pkt := pcmuTone(sprayToneHz, n, 0xbadbad)
			for port := min; port <= max; port++ {
				if _, err := s.conn.WriteToUDP(pkt, &net.UDPAddr{IP: net.ParseIP(ip), Port: port}); err == nil {
					s.sent.Add(1)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
}

// halt stops spraying and waits until the last datagram is sent (loopback delivers it
// into the relay's socket buffer within the send call).
func (s *sprayer) halt() {
	if s.stop != nil {
		close(s.stop)
		s.stop = nil
	}
	s.wg.Wait()
}

// farEnd sends the far end's tone every 20 ms from conn until stopped.
func farEnd(t *testing.T, conn *net.UDPConn, to *net.UDPAddr) (stop func()) {
	t.Helper()
	done, quit := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			_, _ = conn.WriteToUDP(pcmuTone(farToneHz, n, 0xfa5e), to)
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(stop)
	return stop
}

// hearOnlyFarEnd reads n packets at the page and checks that every one is the far end's
// (its SSRC) and that together they carry its tone and not the attacker's.
func hearOnlyFarEnd(t *testing.T, c *call, n int) {
	t.Helper()
	var pcm []int16
	for i := 0; i < n; i++ {
		b := recvWS(t, c.ws)
		var p rtp.Packet
		if err := p.Unmarshal(b); err != nil {
			t.Fatalf("page got a bad packet: %v", err)
		}
		if p.SSRC != 0xfa5e {
			t.Fatalf("page got a packet of SSRC %#x: the spray got through", p.SSRC)
		}
		for _, x := range p.Payload {
			pcm = append(pcm, g711.DecodeUlawFrame(x))
		}
	}
	far, spray := testpeer.ToneLevel(pcm, 8000, farToneHz), testpeer.ToneLevel(pcm, 8000, sprayToneHz)
	if far < toneAmp/2 || spray > toneAmp/20 {
		t.Fatalf("page hears %.0f at %d Hz (far end) and %.0f at %d Hz (spray)", far, farToneHz, spray, sprayToneHz)
	}
}

// pageSpeaks sends n packets of the page's audio and checks the far end gets them all and
// the attacker none.
func pageSpeaks(t *testing.T, c *call, far *net.UDPConn, attacker *sprayer, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		sendWS(t, c.ws, rtpPacket(0, uint16(i), uint32(160*i), 0x9a9e, 160))
	}
	buf := make([]byte, 2000)
	for got := 0; got < n; {
		_ = far.SetReadDeadline(time.Now().Add(deadline))
		k, _, err := far.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("far end got %d of the page's %d packets: %v", got, n, err)
		}
		var h rtp.Header
		if _, err := h.Unmarshal(buf[:k]); err == nil && h.SSRC == 0x9a9e {
			got++
		}
	}
	// Nothing of the page's reached the attacker. This looks only at what has arrived
	// by now, which is all there is: the far end got every packet sent.
	_ = attacker.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if k, _, err := attacker.conn.ReadFromUDP(buf); err == nil {
		t.Fatalf("the attacker received %d bytes from the relay", k)
	}
}

// SDP on loopback (reachable): the spray runs from before the remote is known through
// the whole call; no moment lets it in.
func TestRTPBleedLoopback(t *testing.T) {
	t.Parallel()
	e, min, max := sprayEnv(t, func(c *Config) { c.LatchWindow = time.Millisecond })
	ip := e.gw.cfg.BindAddr
	attacker := startSpray(t, ip, min, max)
	far := newPeer(t)
	c := e.newCall(t, nil, false)
	// Setup under spray: the remote comes after packets already hit the port.
	eventually(t, "spray before the remote", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropNoRemote] > 0 })
	mu, err := e.cl.AddRemote(context.Background(), c.id, far.remote())
	if err != nil {
		t.Fatal(err)
	}
	c.ws = dialWS(t, mu.URL)
	eventually(t, "attached", func() bool { return mustGet(t, e, c.id).WSAttached })
	// The window (1 ms) has long passed and the spray is still running when the far end
	// starts: a loopback SDP address is never latched away from.
	eventually(t, "spray after the remote", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropForeignSource] > 0 })
	farEnd(t, far.rtp, c.gwRTP)
	hearOnlyFarEnd(t, c, 50)
	pageSpeaks(t, c, far.rtp, attacker, 50)
	hearOnlyFarEnd(t, c, 25) // mid-call, spray still on
	tm := mustGet(t, e, c.id)
	if tm.LatchedRTP != far.rtp.LocalAddr().String() {
		t.Errorf("accepted source %q, want the far end %s", tm.LatchedRTP, far.rtp.LocalAddr())
	}
	if tm.Counters.Drops[DropForeignSource] == 0 || tm.Counters.Drops[DropLatchWindow] != 0 {
		t.Errorf("drops %v: want foreign_source, and no latch_window for a loopback address", tm.Counters.Drops)
	}
	if v := counterValue(t, e.gw.m.dropByReason[dropForeignSource]); v < float64(tm.Counters.Drops[DropForeignSource]) {
		t.Errorf("mediagw_drops_total{reason=foreign_source} = %v, below the termination's %d", v, tm.Counters.Drops[DropForeignSource])
	}
}

// SDP naming a private address of the compose subnet (the far end is behind NAT and
// sends from elsewhere): a spray during setup falls into the window and is dropped; the
// far end that sends after it is latched; a spray mid-call is dropped as foreign.
func TestRTPBleedPrivate(t *testing.T) {
	t.Parallel()
	e, min, max := sprayEnv(t, func(c *Config) { c.LatchWindow = time.Hour })
	ip := e.gw.cfg.BindAddr
	attacker := startSpray(t, ip, min, max)
	far := newPeer(t)
	c := e.newCall(t, nil, false)
	r := far.remote()
	r.Address = "10.89.0.77"
	mu, err := e.cl.AddRemote(context.Background(), c.id, r)
	if err != nil {
		t.Fatal(err)
	}
	c.ws = dialWS(t, mu.URL)
	eventually(t, "attached", func() bool { return mustGet(t, e, c.id).WSAttached })
	eventually(t, "spray in the window", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropLatchWindow] > 0 })
	attacker.halt()
	// A datagram of a wrong RTP version from the far end, counted as bad_version (which
	// no sprayed packet is), proves that every sprayed datagram queued before it on the
	// RTP port has been judged: the window may end without a stale spray packet left to
	// latch.
	bad := rtpPacket(0, 1, 0, 0xfa5e, 160)
	bad[0] = 0x40
	if _, err := far.rtp.WriteToUDP(bad, c.gwRTP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "spray drained", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropBadVersion] == 1 })
	endLatchWindow(t, e, c.id)
	farEnd(t, far.rtp, c.gwRTP)
	hearOnlyFarEnd(t, c, 25)
	if tm := mustGet(t, e, c.id); tm.LatchedRTP != far.rtp.LocalAddr().String() {
		t.Fatalf("latched %q, want the far end %s", tm.LatchedRTP, far.rtp.LocalAddr())
	}
	attacker.resume(ip, min, max)
	eventually(t, "spray mid-call", func() bool { return mustGet(t, e, c.id).Counters.Drops[DropForeignSource] > 0 })
	hearOnlyFarEnd(t, c, 50)
	pageSpeaks(t, c, far.rtp, attacker, 50)
	if tm := mustGet(t, e, c.id); tm.LatchedRTP != far.rtp.LocalAddr().String() {
		t.Errorf("latched %q after the mid-call spray, want the far end %s", tm.LatchedRTP, far.rtp.LocalAddr())
	}
}
