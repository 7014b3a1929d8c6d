package floorctl

import (
	"fmt"
	"slices"
	"time"
)

// Member is a floor participant as the server knows it: what SIP and SDP negotiated.
type Member struct {
	// ID is the owner's handle for the participant (a conference member or call ID);
	// Outbound.To carries it back.
	ID string
	// SSRC is the participant's SSRC, sent in the SSRC field of Floor Taken so listeners
	// can tell the talker's RTP stream.
	SSRC uint32
	// UserID is the participant's MCPTT ID (its SIP URI), sent to the others as the
	// Granted Party's Identity while it talks.
	UserID string
	// Queueing is true when the participant's SDP offered "mc_queueing" (§12.1.2.2).
	Queueing bool
	// MaxPriority is the "mc_priority" the answer granted (§12.1.2.2), 0 without one. A
	// request's Floor Priority is capped to it.
	MaxPriority uint8
}

// Outbound is a message the server's owner sends to one participant.
type Outbound struct {
	To  string
	Msg Message
}

// serverState is the general floor control state of TS 24.380 §6.3.4.
type serverState uint8

const (
	floorIdle     serverState = iota // 'G: Floor Idle'
	floorTaken                       // 'G: Floor Taken'
	pendingRevoke                    // 'G: pending Floor Revoke'
)

// member is a Member with the server's bookkeeping.
type member struct {
	Member
	userID   []byte // UserID as the bytes messages carry
	priority uint8  // of the pending or granted request
}

// Server is the floor control server of one talk group (TS 24.380 §6.3, simplified): one
// talker at a time, requests queued by priority then arrival, a maximum talk time that
// ends with Floor Revoke, and the next queued request granted on release. It is a pure
// state machine: each input returns the messages to send and nothing runs in between;
// the owner calls Tick at Deadline. It is not safe for concurrent use.
type Server struct {
	cfg  Config
	ssrc uint32
	now  func() time.Time

	members  []*member // join order, the order of every fan-out
	state    serverState
	holder   *member
	queue    []*member // priority descending, then arrival
	deadline time.Time // T2 in floorTaken, T3 in pendingRevoke
	seq      uint16    // Message Sequence Number of the last Floor Idle or Floor Taken
}

// NewServer returns the floor control server of one talk group. ssrc is the server's own
// SSRC; now is the clock (nil: time.Now).
func NewServer(cfg Config, ssrc uint32, now func() time.Time) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, ssrc: ssrc, now: clockOrNow(now)}, nil
}

// ServerStatus is a snapshot of the floor for logs, metrics and tests.
type ServerStatus struct {
	Holder string   // "" when the floor is idle
	Queue  []string // queued participants, next first
	Until  time.Time
	Revoke bool // a Floor Revoke is pending
}

// Status returns the floor's holder and queue.
func (s *Server) Status() ServerStatus {
	st := ServerStatus{Revoke: s.state == pendingRevoke}
	if s.holder != nil {
		st.Holder, st.Until = s.holder.ID, s.deadline
	}
	for _, m := range s.queue {
		st.Queue = append(st.Queue, m.ID)
	}
	return st
}

// Holder returns the participant allowed to send media, if any: the media distributor
// forwards its RTP and drops everyone else's.
func (s *Server) Holder() (string, bool) {
	if s.holder == nil {
		return "", false
	}
	return s.holder.ID, true
}

// Deadline returns when Tick has work to do (T2 or T3), if a timer runs.
func (s *Server) Deadline() (time.Time, bool) {
	return s.deadline, !s.deadline.IsZero()
}

// Join adds a participant and tells it the floor's state: Floor Taken or Floor Idle, as
// the server does for a participant joining an ongoing call (§6.3.5).
func (s *Server) Join(m Member) ([]Outbound, error) {
	if s.find(m.ID) != nil {
		return nil, fmt.Errorf("%w: %q", ErrDuplicateParticipant, m.ID)
	}
	if len(m.UserID) > maxText {
		return nil, fmt.Errorf("%w: user ID of %d bytes, at most %d", ErrFieldTooLong, len(m.UserID), maxText)
	}
	p := &member{Member: m, userID: []byte(m.UserID)}
	s.members = append(s.members, p)
	var out []Outbound
	return s.stateTo(out, p), nil
}

// Leave removes a participant: its floor is released (the next queued request is granted
// or the floor goes idle) and its queued request dropped. An unknown ID is a no-op, so a
// leave racing a second leave is harmless.
func (s *Server) Leave(id string) []Outbound {
	p := s.find(id)
	if p == nil {
		return nil
	}
	s.members = slices.DeleteFunc(s.members, func(m *member) bool { return m == p })
	var out []Outbound
	switch {
	case s.holder == p:
		out = s.releaseFloor(out)
	case s.queued(p) >= 0:
		i := s.queued(p)
		s.dequeue(p)
		out = s.positionsFrom(out, i)
	}
	return out
}

// Receive handles a message from a participant. Messages a server does not take (Floor
// Granted, Floor Taken ...) are discarded as §6.3.4.1 says for messages without a
// procedure; so is a Floor Ack, since this server never asks for one.
func (s *Server) Receive(from string, msg *Message) ([]Outbound, error) {
	p := s.find(from)
	if p == nil {
		return nil, fmt.Errorf("%w: %q sent %v", ErrUnknownParticipant, from, msg.Subtype)
	}
	var out []Outbound
	switch msg.Subtype {
	case FloorRequest:
		prio := p.MaxPriority
		if msg.Has(FieldFloorPriority) {
			prio = min(msg.FloorPriority, p.MaxPriority)
		}
		out = s.request(out, p, prio)
	case FloorRelease:
		if msg.AckRequired {
			out = s.ack(out, p, FloorRelease)
		}
		out = s.release(out, p)
	case FloorQueuePositionRequest:
		out = s.positionTo(out, p)
	}
	return out, nil
}

// Tick fires the timer that expired at the clock's now: T2 sends Floor Revoke to the
// talker (cause #2, talk burst too long), T3 takes the floor back from a talker that did
// not release after the revoke.
func (s *Server) Tick() []Outbound {
	if s.deadline.IsZero() || s.now().Before(s.deadline) {
		return nil
	}
	var out []Outbound
	switch s.state {
	case floorTaken:
		msg := s.message(FloorRevoke)
		msg.SetRejectCause(RevokeCauseTooLong, nil)
		msg.SetFloorIndicator(s.indicator(s.holder))
		out = append(out, Outbound{To: s.holder.ID, Msg: msg})
		s.state, s.deadline = pendingRevoke, s.now().Add(s.cfg.RevokeGrace)
	case pendingRevoke:
		out = s.releaseFloor(out)
	}
	return out
}

// request handles a Floor Request ('G: Floor Idle', 'G: Floor Taken', §6.3.4).
func (s *Server) request(out []Outbound, p *member, prio uint8) []Outbound {
	switch {
	case s.holder == p:
		// A retransmission after a lost Floor Granted: grant again with the time left.
		return s.grantedTo(out, p)
	case s.holder == nil:
		p.priority = prio
		return s.grant(out, p)
	case s.queued(p) >= 0:
		return s.positionTo(out, p)
	case s.cfg.NoQueueing || !p.Queueing:
		return s.deny(out, p, DenyCauseAnotherHasPermission)
	case len(s.queue) >= s.cfg.QueueLimit:
		return s.deny(out, p, DenyCauseQueueFull)
	}
	p.priority = prio
	i, _ := slices.BinarySearchFunc(s.queue, prio, func(m *member, prio uint8) int {
		if m.priority >= prio {
			return -1 // equal priorities keep arrival order
		}
		return 1
	})
	s.queue = slices.Insert(s.queue, i, p)
	return s.positionsFrom(out, i)
}

// release handles a Floor Release: from the talker it frees the floor, from a queued
// participant it cancels the request; the others get the floor's state again, which ends
// the T100 retransmissions of a release that crossed the server's Floor Idle.
func (s *Server) release(out []Outbound, p *member) []Outbound {
	if s.holder == p {
		return s.releaseFloor(out)
	}
	if i := s.queued(p); i >= 0 {
		s.dequeue(p)
		out = s.stateTo(out, p)
		return s.positionsFrom(out, i)
	}
	return s.stateTo(out, p)
}

// releaseFloor ends the current talk burst: the first queued request gets the floor, or
// everyone gets Floor Idle.
func (s *Server) releaseFloor(out []Outbound) []Outbound {
	s.holder, s.state, s.deadline = nil, floorIdle, time.Time{}
	if len(s.queue) > 0 {
		next := s.queue[0]
		return s.grant(out, next)
	}
	s.seq++
	for _, m := range s.members {
		out = append(out, Outbound{To: m.ID, Msg: s.idle(m)})
	}
	return out
}

// grant gives the floor to p: Floor Granted to it, Floor Taken to the others, new queue
// positions to those still queued.
func (s *Server) grant(out []Outbound, p *member) []Outbound {
	wasQueued := s.queued(p) >= 0
	if wasQueued {
		s.dequeue(p)
	}
	s.holder, s.state, s.deadline = p, floorTaken, s.now().Add(s.cfg.MaxTalk)
	s.seq++
	out = s.grantedTo(out, p)
	for _, m := range s.members {
		if m != p {
			out = append(out, Outbound{To: m.ID, Msg: s.taken(m)})
		}
	}
	if wasQueued {
		out = s.positionsFrom(out, 0)
	}
	return out
}

// grantedTo sends Floor Granted with the talk time left (§6.3.5).
func (s *Server) grantedTo(out []Outbound, p *member) []Outbound {
	msg := s.message(FloorGranted)
	msg.SetDuration(durationSeconds(s.deadline.Sub(s.now())))
	msg.SetFloorPriority(p.priority)
	msg.SetFloorIndicator(s.indicator(p))
	return append(out, Outbound{To: p.ID, Msg: msg})
}

// deny sends Floor Deny with a cause (§6.3.5).
func (s *Server) deny(out []Outbound, p *member, cause uint16) []Outbound {
	msg := s.message(FloorDeny)
	msg.SetRejectCause(cause, nil)
	msg.SetFloorIndicator(s.indicator(p))
	return append(out, Outbound{To: p.ID, Msg: msg})
}

// ack sends Floor Ack for a message that asked for one (§6.3.5, source: the controlling
// MCPTT function, which this server plays).
func (s *Server) ack(out []Outbound, p *member, of Subtype) []Outbound {
	msg := s.message(FloorAck)
	msg.SetSource(SourceControlling)
	msg.SetMessageType(of)
	return append(out, Outbound{To: p.ID, Msg: msg})
}

// stateTo tells one participant the floor's state: Floor Taken or Floor Idle.
func (s *Server) stateTo(out []Outbound, p *member) []Outbound {
	if s.holder != nil && s.holder != p {
		return append(out, Outbound{To: p.ID, Msg: s.taken(p)})
	}
	if s.holder == p {
		return s.grantedTo(out, p)
	}
	return append(out, Outbound{To: p.ID, Msg: s.idle(p)})
}

// positionTo sends Floor Queue Position Info: the position, or 254 when not queued.
func (s *Server) positionTo(out []Outbound, p *member) []Outbound {
	msg := s.message(FloorQueuePositionInfo)
	if i := s.queued(p); i >= 0 {
		msg.SetQueueInfo(uint8(i+1), p.priority)
	} else {
		msg.SetQueueInfo(QueuePositionNotQueued, 0)
	}
	msg.SetFloorIndicator(s.indicator(p))
	return append(out, Outbound{To: p.ID, Msg: msg})
}

// positionsFrom sends the position to every queued participant from index i on: those
// whose place changed. The specification answers position requests only; pushing the
// change lets the page show the position without polling.
func (s *Server) positionsFrom(out []Outbound, i int) []Outbound {
	for _, m := range s.queue[i:] {
		out = s.positionTo(out, m)
	}
	return out
}

func (s *Server) taken(to *member) Message {
	msg := s.message(FloorTaken)
	msg.SetGrantedPartyID(s.holder.userID)
	msg.SetPermissionToRequest(true)
	msg.SetSequenceNumber(s.seq)
	msg.SetFloorIndicator(s.indicator(to))
	msg.SetGrantedSSRC(s.holder.SSRC)
	return msg
}

func (s *Server) idle(to *member) Message {
	msg := s.message(FloorIdle)
	msg.SetSequenceNumber(s.seq)
	msg.SetFloorIndicator(s.indicator(to))
	return msg
}

func (s *Server) message(st Subtype) Message { return Message{Subtype: st, SSRC: s.ssrc} }

// indicator is the Floor Indicator toward p: a normal call, with queueing when both the
// server and p support it (§8.2.3.15 bits A and F).
func (s *Server) indicator(p *member) Indicator {
	if !s.cfg.NoQueueing && p.Queueing {
		return IndicatorNormal | IndicatorQueueing
	}
	return IndicatorNormal
}

func (s *Server) find(id string) *member {
	for _, m := range s.members {
		if m.ID == id {
			return m
		}
	}
	return nil
}

func (s *Server) queued(p *member) int { return slices.Index(s.queue, p) }

func (s *Server) dequeue(p *member) {
	s.queue = slices.DeleteFunc(s.queue, func(m *member) bool { return m == p })
}
