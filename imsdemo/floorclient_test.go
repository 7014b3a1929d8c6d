package imsdemo

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"dsmgw/floorctl"
)

// floorClient is the tests' MCPTT floor participant: a UDP socket on loopback and a
// floorctl.Participant run by a reader and a ticker, as the gateway runs one per call.
// With raw set it only records what arrives and answers nothing (a client that ignores
// Floor Revoke).
type floorClient struct {
	t    testing.TB
	name string
	conn *net.UDPConn
	raw  bool
	wg   sync.WaitGroup
	stop chan struct{}

	mu     sync.Mutex
	part   *floorctl.Participant
	server netip.AddrPort
	got    []floorctl.Message // every message received, in order
}

func newFloorClient(t testing.TB, name string, raw bool) *floorClient {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	part, err := floorctl.NewParticipant(floorctl.Config{}, uint32(len(name))*104729, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &floorClient{t: t, name: name, conn: conn, raw: raw, part: part, stop: make(chan struct{})}
	c.wg.Add(2)
	go func() { defer c.wg.Done(); c.read() }()
	go func() { defer c.wg.Done(); c.ticker() }()
	t.Cleanup(func() {
		close(c.stop)
		conn.Close()
		c.wg.Wait()
	})
	return c
}

// port is the floor port the client offers.
func (c *floorClient) port() int { return c.conn.LocalAddr().(*net.UDPAddr).Port }

// useAnswer takes the server's floor port from an SDP answer; an answer that refuses
// floor control leaves the client without a server.
func (c *floorClient) useAnswer(body []byte) {
	c.t.Helper()
	m, err := floorctl.ParseMedia(body)
	if errors.Is(err, floorctl.ErrNoFloorControl) {
		return
	}
	if err != nil {
		c.t.Fatalf("%s: floor control in the answer: %v\n%s", c.name, err, body)
	}
	c.mu.Lock()
	c.server = netip.AddrPortFrom(m.Addr, uint16(m.Port))
	c.mu.Unlock()
}

func (c *floorClient) read() {
	buf := make([]byte, 1500)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return
		}
		c.mu.Lock()
		sc := floorctl.NewScanner(buf[:n])
		var m floorctl.Message
		for sc.Next(&m) == nil {
			cp := m
			cp.GrantedPartyID = append([]byte(nil), m.GrantedPartyID...)
			c.got = append(c.got, cp)
		}
		if !c.raw {
			out, _ := c.part.ReceiveDatagram(buf[:n])
			c.sendLocked(out)
		}
		c.mu.Unlock()
	}
}

func (c *floorClient) ticker() {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.mu.Lock()
			if !c.raw {
				c.sendLocked(c.part.Tick())
			}
			c.mu.Unlock()
		}
	}
}

func (c *floorClient) sendLocked(msgs []floorctl.Message) {
	for _, m := range msgs {
		b, err := m.Marshal()
		if err != nil {
			c.t.Errorf("%s: marshal %v: %v", c.name, m.String(), err)
			continue
		}
		c.sendBytesLocked(b)
	}
}

func (c *floorClient) sendBytesLocked(b []byte) {
	if c.server.IsValid() {
		_, _ = c.conn.WriteToUDPAddrPort(b, c.server)
	}
}

// request is the user pressing the button; release letting it go.
func (c *floorClient) request() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.raw {
		m := floorctl.Message{Subtype: floorctl.FloorRequest, SSRC: 1}
		b, _ := m.Marshal()
		c.sendBytesLocked(b)
		return
	}
	c.sendLocked(c.part.Request())
}

func (c *floorClient) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendLocked(c.part.Release())
}

// sendRaw sends a datagram as it is (malformed messages).
func (c *floorClient) sendRaw(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sendBytesLocked(b)
}

func (c *floorClient) view() floorctl.View {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.part.View()
}

func (c *floorClient) messages() []floorctl.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]floorctl.Message(nil), c.got...)
}

// waitView waits until the participant's view satisfies ok (the floor moves by messages
// over loopback: a generous bound only stops a broken test).
func (c *floorClient) waitView(what string, ok func(floorctl.View) bool) floorctl.View {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := c.view()
		if ok(v) && !v.Pending {
			return v
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: floor %s never came; view %+v", c.name, what, v)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitMessage waits for a message of a subtype received after the first skip messages.
func (c *floorClient) waitMessage(st floorctl.Subtype, skip int) floorctl.Message {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs := c.messages()
		for _, m := range msgs[min(skip, len(msgs)):] {
			if m.Subtype == st {
				return m
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no %v among %v", c.name, st, msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func isFloor(f floorctl.Floor) func(floorctl.View) bool {
	return func(v floorctl.View) bool { return v.Floor == f }
}

func takenBy(talker string) func(floorctl.View) bool {
	return func(v floorctl.View) bool { return v.Floor == floorctl.FloorIsTaken && v.Talker == talker }
}

func queuedAt(pos int) func(floorctl.View) bool {
	return func(v floorctl.View) bool { return v.Floor == floorctl.FloorIsQueued && v.Position == pos }
}

func (c *floorClient) String() string { return fmt.Sprintf("floor client %s", c.name) }
