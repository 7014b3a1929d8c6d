package ptt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"dsmgw/floorctl"
)

// State is the floor as the DSM carries it to the page.
type State struct {
	// Floor is idle, granted, taken, denied or queued.
	Floor floorctl.Floor
	// Talker is who talks while taken (and while queued behind a talker).
	Talker string
	// Reason says why the last request failed or the floor was revoked; it stays until
	// the next request.
	Reason string
	// Position is the 1-based queue position while queued (0: the server did not say).
	Position int
	// Duration is the talk time granted, in whole seconds, while granted: the page
	// counts down from when it sees the grant (no clock shared with the gateway).
	Duration int
}

// Hooks are what a channel does outside itself; both run on Run's goroutine.
type Hooks struct {
	// Gate opens or closes the gate of the call's media gateway termination: the page's
	// audio reaches the group only while it is open. It is called before the page hears
	// of a grant, and before a Floor Release goes out.
	Gate func(ctx context.Context, open bool) error
	// Publish writes the floor state for the page, each time it changes.
	Publish func(ctx context.Context, s State)
}

// intent is what the page asks for.
type intent uint8

const (
	intentRequest intent = iota + 1
	intentRelease
)

// Channel is the floor channel of one push-to-talk call: its UDP socket and the call's
// floor participant. Open it before the offer (its port goes in the SDP), give it the
// answer, then Run it for the call's life; Request and Release may be called from any
// goroutine.
type Channel struct {
	ports *Ports
	conn  *net.UDPConn
	port  int
	log   *slog.Logger
	part  *floorctl.Participant // owned by Run's goroutine

	intents chan intent   // the page's intents, merged by Run
	done    chan struct{} // closed when Run has ended
	once    sync.Once     // closes conn and gives the port back

	mu     sync.Mutex     // guards server
	server netip.AddrPort // the floor control server, from the answer
}

// intentQueue bounds the intents waiting for Run: a page pressing and releasing faster
// than the floor server answers needs no more, and a full queue drops (the page writes
// again on the next press).
const intentQueue = 8

// Open binds a floor port for a call. ssrc is the call's SSRC in floor messages; log
// should carry the call's player and call_id.
func (p *Ports) Open(ssrc uint32, log *slog.Logger) (*Channel, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, port, err := p.open()
	if err != nil {
		return nil, err
	}
	part, err := floorctl.NewParticipant(p.cfg.Floor, ssrc, p.cfg.Priority, nil)
	if err != nil {
		conn.Close()
		p.release(port)
		return nil, fmt.Errorf("ptt: %w", err)
	}
	return &Channel{ports: p, conn: conn, port: port, log: log.With("floor_port", port), part: part,
		intents: make(chan intent, intentQueue), done: make(chan struct{})}, nil
}

// Port is the channel's local UDP port.
func (c *Channel) Port() int { return c.port }

// AppendOffer appends the floor control media description of our offer: the MCPTT
// line with our public address and port, queueing and our priority (TS 24.380 section
// 14). Put it after the audio's media description.
func (c *Channel) AppendOffer(b []byte) []byte {
	return c.appendMedia(b, floorctl.Params{Queueing: true, Priority: c.ports.cfg.Priority})
}

// appendMedia appends the MCPTT m= line with our address and port, and its fmtp.
func (c *Channel) appendMedia(b []byte, p floorctl.Params) []byte {
	m := floorctl.AppendMedia(nil, c.port, p)
	i := bytes.Index(m, []byte("\r\n")) + 2
	ipv := "IP4"
	if c.ports.pub.Is6() && !c.ports.pub.Is4In6() {
		ipv = "IP6"
	}
	b = append(b, m[:i]...) // m= first, then c=, then the attributes (RFC 4566 order)
	b = fmt.Appendf(b, "c=IN %s %s\r\n", ipv, c.ports.pub.Unmap())
	return append(b, m[i:]...)
}

// AppendAnswer appends the floor control media description of our answer to an offer
// whose MCPTT parameters were offered: queueing when both sides support it, the offered
// priority capped by ours (TS 24.380 section 14).
func (c *Channel) AppendAnswer(b []byte, offered floorctl.Params) []byte {
	return c.appendMedia(b, floorctl.AnswerParams(offered, floorctl.Params{Queueing: true, Priority: c.ports.cfg.Priority}))
}

// SetAnswer takes the floor control server's address from the SDP answer. An answer
// that refuses floor control (no MCPTT line, or port 0) is floorctl.ErrNoFloorControl.
func (c *Channel) SetAnswer(body []byte) (floorctl.Params, error) {
	m, err := floorctl.ParseMedia(body)
	if err != nil {
		return floorctl.Params{}, err
	}
	if !m.Addr.IsValid() || m.Addr.IsUnspecified() {
		return floorctl.Params{}, fmt.Errorf("%w: no address for the floor control server", floorctl.ErrBadSDP)
	}
	c.mu.Lock()
	c.server = netip.AddrPortFrom(m.Addr.Unmap(), uint16(m.Port))
	c.mu.Unlock()
	return m.Params, nil
}

// Request is the page pressing the button (DSM floor=request).
func (c *Channel) Request() { c.push(intentRequest) }

// Release is the page letting go (DSM floor=release), or the page's media WebSocket
// closing: the floor goes to the next at once.
func (c *Channel) Release() { c.push(intentRelease) }

func (c *Channel) push(i intent) {
	select {
	case c.intents <- i:
	case <-c.done:
	default:
		c.log.Warn("floor intent dropped: queue full", "intent", i)
	}
}

// Close frees the socket and the port; Run does it when it ends, Close is for a
// channel that never ran. Safe twice.
func (c *Channel) Close() {
	c.once.Do(func() {
		c.conn.Close()
		c.ports.release(c.port)
	})
}

// Done is closed when Run has ended.
func (c *Channel) Done() <-chan struct{} { return c.done }

// stateOf maps the participant's view to the DSM's fields.
func stateOf(v floorctl.View, now time.Time) State {
	s := State{Floor: v.Floor, Talker: v.Talker, Reason: v.Reason, Position: v.Position}
	if v.Floor == floorctl.FloorIsGranted && !v.Until.IsZero() {
		s.Duration = int((v.Until.Sub(now) + time.Second/2) / time.Second)
	}
	return s
}
