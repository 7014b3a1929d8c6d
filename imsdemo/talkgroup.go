package imsdemo

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"dsmgw/floorctl"
)

// talkGroup is the floor control of a talk group room: the controlling MCPTT function's
// floor control server (floorctl.Server, TS 24.380 section 6.3) wired to the members'
// floor ports and to the mixer's speak gates. Only the floor holder's speak gate is
// open, so whatever the others send (a phone that ignores the floor) is not mixed; and
// since the mix leaves each member's own audio out, the holder hears nothing and
// everyone else hears the holder.
//
// Every input (a join, a leave, a datagram, the timer) runs under mu and ends in apply,
// which moves the speak gate to the new holder, sends the server's messages and re-arms
// the one timer from the server's Deadline.
type talkGroup struct {
	log *slog.Logger

	mu      sync.Mutex // guards everything below; taken before any leg's mu
	srv     *floorctl.Server
	members map[string]*leg // by member ID (the leg's Call-ID)
	holder  *leg            // whose speak gate is open
	timer   *time.Timer     // fires tick at the server's Deadline
	closed  bool
	buf     [maxFloorDatagram]byte // marshalling buffer
}

// newTalkGroup starts the floor control of a talk group with its own random SSRC.
func newTalkGroup(cfg floorctl.Config, log *slog.Logger) (*talkGroup, error) {
	srv, err := floorctl.NewServer(cfg, rand.Uint32(), nil)
	if err != nil {
		return nil, fmt.Errorf("imsdemo: floor control server: %w", err)
	}
	g := &talkGroup{log: log, srv: srv, members: map[string]*leg{}}
	g.timer = time.AfterFunc(time.Hour, g.tick)
	g.timer.Stop()
	return g, nil
}

// join makes a member of a leg whose session is established: it gets Floor Idle or
// Floor Taken at once (the late-join procedure of TS 24.380 section 6.3.5), so it knows
// who talks before it asks. params are the MCPTT fmtp of our answer.
func (g *talkGroup) join(l *leg, userID string, params floorctl.Params) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return fmt.Errorf("imsdemo: talk group closed")
	}
	out, err := g.srv.Join(floorctl.Member{ID: l.id, UserID: userID, Queueing: params.Queueing,
		MaxPriority: params.Priority})
	if err != nil {
		return fmt.Errorf("imsdemo: floor join: %w", err)
	}
	g.members[l.id] = l
	g.apply(out)
	return nil
}

// leave takes a leg out: a floor it held goes to the next in the queue (or idle), a
// request it had queued is dropped. Safe for a leg that never joined.
func (g *talkGroup) leave(l *leg) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.members[l.id] != l {
		return
	}
	out := g.srv.Leave(l.id)
	delete(g.members, l.id)
	if g.holder == l {
		g.holder = nil // its gate is closed by the leg's end; the mixer drops it anyway
	}
	g.apply(out)
}

// receive hands a datagram from a leg's floor port to the server. It reports whether
// the datagram was accepted whole (its source may then be latched); a malformed
// message is logged, answered with nothing and changes nothing.
func (g *talkGroup) receive(l *leg, datagram []byte) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.members[l.id] != l {
		return false
	}
	out, err := g.srv.ReceiveDatagram(l.id, datagram)
	if err != nil {
		l.log.Info("floor message refused", "err", err, "bytes", len(datagram))
	}
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		sc := floorctl.NewScanner(datagram)
		var m floorctl.Message
		for sc.Next(&m) == nil {
			l.log.Debug("floor message received", "msg", m.String())
		}
	}
	g.apply(out)
	return err == nil
}

// tick runs the server's timers (T2 stop talking, T3 stop talking grace).
func (g *talkGroup) tick() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.apply(g.srv.Tick())
}

// close stops the timer: the room is gone.
func (g *talkGroup) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.timer.Stop()
}

// status returns the floor's holder and queue, for the logs and tests.
func (g *talkGroup) status() floorctl.ServerStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.srv.Status()
}

// apply carries out the server's decision (g.mu held): the speak gate follows the
// holder first, so the first packets after Floor Granted are already mixed; then the
// messages go out; then the timer is re-armed.
func (g *talkGroup) apply(out []floorctl.Outbound) {
	var next *leg
	if id, ok := g.srv.Holder(); ok {
		next = g.members[id]
	}
	if next != g.holder {
		if g.holder != nil {
			g.holder.setFloor(false)
		}
		if next != nil {
			next.setFloor(true)
			next.log.Info("floor granted")
		} else {
			g.log.Info("floor idle")
		}
		g.holder = next
	}
	for _, o := range out {
		to := g.members[o.To]
		if to == nil || to.fc == nil {
			continue
		}
		n, err := o.Msg.MarshalTo(g.buf[:])
		if err != nil {
			to.log.Warn("floor message not sent", "msg", o.Msg.String(), "err", err)
			continue
		}
		to.fc.send(g.buf[:n])
		to.log.Debug("floor message sent", "msg", o.Msg.String())
	}
	if d, ok := g.srv.Deadline(); ok {
		g.timer.Reset(max(time.Until(d), 0))
	} else {
		g.timer.Stop()
	}
}
