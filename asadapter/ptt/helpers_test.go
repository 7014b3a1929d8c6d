package ptt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"dsmgw/floorctl"
)

// floorServer is a floor control server on a UDP socket for the tests: floorctl.Server,
// the demo conference server's own machine, with members known by their source address.
type floorServer struct {
	t    testing.TB
	conn *net.UDPConn
	wg   sync.WaitGroup

	mu   sync.Mutex
	srv  *floorctl.Server
	got  []floorctl.Subtype // every message received, in order
	buf  [1500]byte
	stop chan struct{}
}

func newFloorServer(t testing.TB, cfg floorctl.Config) *floorServer {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := floorctl.NewServer(cfg, 0x5e5e5e5e, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &floorServer{t: t, conn: conn, srv: srv, stop: make(chan struct{})}
	s.wg.Add(2)
	go func() { defer s.wg.Done(); s.read() }()
	go func() { defer s.wg.Done(); s.tick() }()
	t.Cleanup(func() { close(s.stop); conn.Close(); s.wg.Wait() })
	return s
}

func (s *floorServer) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// answer is an SDP answer naming the server's floor port.
func (s *floorServer) answer() []byte {
	b := []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n")
	return floorctl.AppendMedia(b, s.port(), floorctl.Params{Queueing: true, Priority: 1})
}

// join makes a member of a channel's port, as the server does once the call is up.
func (s *floorServer) join(c *Channel, user string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out, err := s.srv.Join(floorctl.Member{ID: memberID(c), UserID: user, Queueing: true, MaxPriority: 1})
	if err != nil {
		s.t.Fatal(err)
	}
	s.sendLocked(out)
}

func memberID(c *Channel) string {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(c.Port())).String()
}

func (s *floorServer) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		sc := floorctl.NewScanner(buf[:n])
		var m floorctl.Message
		for sc.Next(&m) == nil {
			s.got = append(s.got, m.Subtype)
		}
		out, _ := s.srv.ReceiveDatagram(from.String(), buf[:n])
		s.sendLocked(out)
		s.mu.Unlock()
	}
}

func (s *floorServer) tick() {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			s.sendLocked(s.srv.Tick())
			s.mu.Unlock()
		}
	}
}

func (s *floorServer) sendLocked(out []floorctl.Outbound) {
	for _, o := range out {
		n, err := o.Msg.MarshalTo(s.buf[:])
		if err != nil {
			s.t.Errorf("marshal %v: %v", o.Msg.String(), err)
			continue
		}
		to, err := netip.ParseAddrPort(o.To)
		if err != nil {
			s.t.Errorf("member %q: %v", o.To, err)
			continue
		}
		_, _ = s.conn.WriteToUDPAddrPort(s.buf[:n], to)
	}
}

func (s *floorServer) received() []floorctl.Subtype {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]floorctl.Subtype(nil), s.got...)
}

func (s *floorServer) status() floorctl.ServerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.Status()
}

// sendRaw sends a datagram from the server's socket to a channel.
func (s *floorServer) sendRaw(c *Channel, b []byte) {
	_, _ = s.conn.WriteToUDPAddrPort(b, netip.MustParseAddrPort(memberID(c)))
}

// recorder is a call's side of the hooks: what the gate and the page were told, in
// order.
type recorder struct {
	mu      sync.Mutex
	events  []string // "gate open", "gate closed", "floor granted" ...
	states  []State
	gateErr error // returned by Gate(true)
}

func (r *recorder) hooks() Hooks {
	return Hooks{
		Gate: func(_ context.Context, open bool) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			if open && r.gateErr != nil {
				r.events = append(r.events, "gate failed")
				return r.gateErr
			}
			r.events = append(r.events, map[bool]string{true: "gate open", false: "gate closed"}[open])
			return nil
		},
		Publish: func(_ context.Context, s State) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, "floor "+string(s.Floor))
			r.states = append(r.states, s)
		},
	}
}

func (r *recorder) last() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return State{}
	}
	return r.states[len(r.states)-1]
}

func (r *recorder) eventLog() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// wait waits until the last published state satisfies ok (floor messages over
// loopback: a generous bound only stops a broken test).
func (r *recorder) wait(t testing.TB, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s := r.last(); ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("floor %s never came; last %+v, events %v", what, r.last(), r.eventLog())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func floorIs(f floorctl.Floor) func(State) bool {
	return func(s State) bool { return s.Floor == f }
}

// call is one channel running against the server.
type call struct {
	ch  *Channel
	rec *recorder
}

// startCall opens a channel, gives it the server's answer, runs it and joins it.
func startCall(t *testing.T, ports *Ports, s *floorServer, user string, gateErr error) *call {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("player", user)
	ch, err := ports.Open(uint32(len(user))*7, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.SetAnswer(s.answer()); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{gateErr: gateErr}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = ch.Run(ctx, rec.hooks()) }()
	t.Cleanup(func() { cancel(); <-ch.Done() })
	s.join(ch, user)
	rec.wait(t, "idle at the start", floorIs(floorctl.FloorIsIdle))
	return &call{ch: ch, rec: rec}
}

func testPorts(t *testing.T) *Ports {
	t.Helper()
	p, err := NewPorts(Config{BindAddr: "127.0.0.1", PublicAddr: "127.0.0.1", PortMin: 41000, PortMax: 42999})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var errGateDown = errors.New("media gateway unreachable")

func (c *call) String() string { return fmt.Sprintf("call on floor port %d", c.ch.Port()) }
