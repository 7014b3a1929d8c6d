package ptt

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"dsmgw/floorctl"
)

// datagramQueue bounds the floor datagrams waiting for Run. Floor control is a few
// messages per talk burst; a burst beyond this is a flood, dropped at the reader rather
// than blocking it.
const datagramQueue = 16

// maxDatagram is the largest floor datagram read (the longest message is under 600
// bytes; a few of them in one datagram fit).
const maxDatagram = 1500

// Run runs the floor participant until ctx ends: the server's messages, the page's
// intents and the retransmission timers go in; floor messages, the gate and the page's
// floor state come out. When it ends it closes the gate, gives the floor back (a Floor
// Release, best effort, so the group is not held silent until the server notices the
// call ended) and frees the port. It returns nil: a malformed message or a failed gate
// is logged and the call goes on.
func (c *Channel) Run(ctx context.Context, h Hooks) error {
	defer close(c.done)
	defer c.Close()
	c.mu.Lock()
	server := c.server
	c.mu.Unlock()

	dgC := make(chan []byte, datagramQueue)
	readerDone := make(chan struct{})
	go func() { defer close(readerDone); c.read(server, dgC) }()

	r := runner{c: c, h: h, server: server, timer: time.NewTimer(time.Hour)}
	r.timer.Stop()
	r.publish(ctx)
	defer func() {
		// The call is ending: the context may be gone, the hooks get a short one of
		// their own.
		ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		r.after(ectx, c.part.Release())
		c.conn.Close() // ends the reader
		<-readerDone
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d := <-dgC:
			out, err := c.part.ReceiveDatagram(d)
			if err != nil {
				c.log.Info("floor message refused", "err", err, "bytes", len(d))
			}
			r.after(ctx, out)
		case i := <-c.intents:
			var out []floorctl.Message
			if i == intentRequest {
				r.gateErr = ""
				out = c.part.Request()
			} else {
				out = c.part.Release()
			}
			r.after(ctx, out)
		case <-r.timer.C:
			r.after(ctx, c.part.Tick())
		}
	}
}

// read passes the datagrams from the floor control server to dgC (a copy each): only
// from the address and port of its answer, as the media gateway takes RTP only from the
// SDP's source (a server answers from the port it named; nobody else who learns our
// port can speak for it). Anything else, or what does not start with a floor message,
// is dropped here.
func (c *Channel) read(from netip.AddrPort, dgC chan<- []byte) {
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := c.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Warn("floor read failed", "err", err)
			}
			return
		}
		if netip.AddrPortFrom(src.Addr().Unmap(), src.Port()) != from {
			c.log.Debug("floor datagram from a foreign address", "from", src.String())
			continue
		}
		if !floorctl.IsFloorControl(buf[:n]) {
			c.log.Debug("not a floor message", "bytes", n)
			continue
		}
		select {
		case dgC <- append([]byte(nil), buf[:n]...):
		default:
			c.log.Warn("floor datagram dropped: queue full")
		}
	}
}

// runner is Run's state: what was last told to the gate and the page.
type runner struct {
	c       *Channel
	h       Hooks
	server  netip.AddrPort
	timer   *time.Timer
	gate    bool   // the gate is open
	gateErr string // why the gate could not open, shown until the next request
	last    State
	started bool // last holds what was published
	buf     [maxDatagram]byte
}

// after carries out one input's outcome: the gate first (open before the page hears of
// the grant, closed before the Floor Release leaves), then the messages, then the page's
// state, then the timer.
func (r *runner) after(ctx context.Context, out []floorctl.Message) {
	c := r.c
	if may := c.part.MaySend(); may != r.gate {
		err := r.setGate(ctx, may)
		if err != nil && may {
			// Talking into a closed gate helps nobody, and holding the floor silences
			// the group: give it back.
			c.log.Warn("gate did not open; releasing the floor", "err", err)
			r.gateErr = "media gateway: " + err.Error()
			out = append(out, c.part.Release()...)
		}
	}
	for _, m := range out {
		n, err := m.MarshalTo(r.buf[:])
		if err != nil {
			c.log.Warn("floor message not sent", "msg", m.String(), "err", err)
			continue
		}
		if !r.server.IsValid() {
			continue
		}
		if _, err := c.conn.WriteToUDPAddrPort(r.buf[:n], r.server); err != nil {
			c.log.Info("floor message not sent", "msg", m.String(), "err", err)
			continue
		}
		c.log.Debug("floor message sent", "msg", m.String())
	}
	r.publish(ctx)
	if d, ok := c.part.Deadline(); ok {
		r.timer.Reset(max(time.Until(d), 0))
	} else {
		r.timer.Stop()
	}
}

func (r *runner) setGate(ctx context.Context, open bool) error {
	if r.h.Gate != nil {
		if err := r.h.Gate(ctx, open); err != nil {
			if !open {
				// The media gateway will drop the page's audio once it sees the floor
				// gone anyway (the server mixes only the holder); log and go on.
				r.c.log.Warn("gate did not close", "err", err)
				r.gate = false
			}
			return err
		}
	}
	r.gate = open
	return nil
}

// publish tells the page the floor's state when it changed.
func (r *runner) publish(ctx context.Context) {
	s := stateOf(r.c.part.View(), time.Now())
	if r.gateErr != "" && s.Floor != floorctl.FloorIsGranted {
		s.Reason = r.gateErr
	}
	if r.started && s == r.last {
		return
	}
	r.started, r.last = true, s
	r.c.log.Info("floor", "state", string(s.Floor), "talker", s.Talker, "reason", s.Reason, "position", s.Position)
	if r.h.Publish != nil {
		r.h.Publish(ctx, s)
	}
}
