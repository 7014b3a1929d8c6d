package floorctl

import (
	"fmt"
	"time"
)

// State is a floor participant state of TS 24.380 §6.2.4, reduced to what a page needs:
// 'Start-stop' and 'Releasing' belong to the call's owner, who creates and drops the
// Participant.
type State uint8

// The participant states.
const (
	StateNoPermission   State = iota // 'U: has no permission' (floor idle or taken by another)
	StatePendingRequest              // 'U: pending Request': Floor Request sent, T101 runs
	StateHasPermission               // 'U: has permission': the page may send media
	StatePendingRelease              // 'U: pending Release': Floor Release sent, T100 runs
	StateQueued                      // 'U: queued': the request waits in the server's queue
)

// String returns the state's name in the specification.
func (s State) String() string {
	switch s {
	case StateNoPermission:
		return "U: has no permission"
	case StatePendingRequest:
		return "U: pending Request"
	case StateHasPermission:
		return "U: has permission"
	case StatePendingRelease:
		return "U: pending Release"
	case StateQueued:
		return "U: queued"
	}
	return fmt.Sprintf("state %d", uint8(s))
}

// Floor is the floor state as the DSM carries it to the page.
type Floor string

// The floor states the gateway writes.
const (
	FloorIsIdle    Floor = "idle"    // nobody talks
	FloorIsGranted Floor = "granted" // this page talks
	FloorIsTaken   Floor = "taken"   // another talks (View.Talker)
	FloorIsDenied  Floor = "denied"  // the last request failed (View.Reason)
	FloorIsQueued  Floor = "queued"  // the request waits (View.Position)
)

// View is the floor as the page sees it. It is comparable: the owner writes the DSM when
// it differs from the last one written.
type View struct {
	Floor Floor
	// Talker is the Granted Party's Identity of the talker while taken (and while queued
	// behind it); TalkerSSRC its SSRC when the server sent one.
	Talker     string
	TalkerSSRC uint32
	// Reason says why the last request was denied, timed out, or why the floor was
	// revoked; it stays until the next request so the page can show it after the floor
	// moved on.
	Reason string
	// Position is the 1-based queue position while queued, 0 when the server does not say.
	Position int
	// Until is when the server revokes the floor while granted (the Duration field).
	Until time.Time
	// Pending is true while a request or a release waits for the server.
	Pending bool
}

// Participant is the floor participant of one call (TS 24.380 §6.2.4, simplified),
// acting for a page: Request and Release are the page's intents, Receive takes the
// server's messages, Tick runs T100 and T101 at Deadline. Each returns the messages to
// send to the floor control server. It is a pure state machine, not safe for concurrent
// use.
type Participant struct {
	cfg      Config
	ssrc     uint32
	priority uint8
	now      func() time.Time

	state      State
	timer      time.Time // T101 in StatePendingRequest, T100 in StatePendingRelease
	tries      int       // messages sent in the current retransmission series (C101, C100)
	taken      bool      // the last floor news was Floor Taken (else idle)
	talker     string
	talkerSSRC uint32
	denied     bool // the last request ended without the floor (deny, timeout, revoke)
	reason     string
	position   int
	until      time.Time
}

// NewParticipant returns a participant in 'U: has no permission' with the floor idle.
// ssrc is the participant's SSRC; priority the Floor Priority of its requests (0: none
// sent, the server's default); now the clock (nil: time.Now).
func NewParticipant(cfg Config, ssrc uint32, priority uint8, now func() time.Time) (*Participant, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Participant{cfg: cfg, ssrc: ssrc, priority: priority, now: clockOrNow(now)}, nil
}

// State returns the participant state.
func (p *Participant) State() State { return p.state }

// MaySend reports whether the page's media may go to the group: only with permission.
func (p *Participant) MaySend() bool { return p.state == StateHasPermission }

// Deadline returns when Tick has work to do (T100 or T101), if a timer runs.
func (p *Participant) Deadline() (time.Time, bool) { return p.timer, !p.timer.IsZero() }

// View returns the floor as the page sees it.
func (p *Participant) View() View {
	v := View{Reason: p.reason, Pending: p.state == StatePendingRequest || p.state == StatePendingRelease}
	if p.taken {
		v.Talker, v.TalkerSSRC = p.talker, p.talkerSSRC
	}
	switch {
	case p.state == StateHasPermission:
		v.Floor, v.Until, v.Talker, v.TalkerSSRC = FloorIsGranted, p.until, "", 0
	case p.state == StateQueued:
		v.Floor, v.Position = FloorIsQueued, p.position
	case p.denied:
		v.Floor = FloorIsDenied
	case p.taken:
		v.Floor = FloorIsTaken
	default:
		v.Floor = FloorIsIdle
	}
	return v
}

// Request is the page's "floor=request" (PTT pressed): a Floor Request, T101 started.
// It does nothing while a request is already under way or granted.
func (p *Participant) Request() []Message {
	if p.state != StateNoPermission && p.state != StatePendingRelease {
		return nil
	}
	p.denied, p.reason = false, ""
	p.enter(StatePendingRequest, p.cfg.T101)
	return []Message{p.request()}
}

// Release is the page's "floor=release" (PTT let go): a Floor Release, T100 started,
// whether the floor was granted, queued or still asked for (§6.2.4). It does nothing
// without a request.
func (p *Participant) Release() []Message {
	switch p.state {
	case StatePendingRequest, StateHasPermission, StateQueued:
		if p.state == StateHasPermission {
			p.taken = false // the floor is ours to free: idle unless the server says who is next
		}
		p.enter(StatePendingRelease, p.cfg.T100)
		return []Message{p.message(FloorRelease)}
	}
	return nil
}

// Receive handles a message from the floor control server and returns the messages to
// send back: a Floor Ack when the message asked for one, a Floor Release for a grant
// nobody asked for or a revoke.
func (p *Participant) Receive(m *Message) []Message {
	var out []Message
	if m.AckRequired {
		ack := p.message(FloorAck)
		ack.SetSource(SourceParticipant)
		ack.SetMessageType(m.Subtype)
		out = append(out, ack)
	}
	switch m.Subtype {
	case FloorGranted:
		out = p.granted(out, m)
	case FloorDeny:
		if p.state == StatePendingRequest || p.state == StateQueued {
			p.denied, p.reason = true, DenyReason(m.RejectCause)
			p.enter(StateNoPermission, 0)
		}
	case FloorTaken:
		p.taken, p.talker, p.talkerSSRC = true, string(m.GrantedPartyID), 0
		if m.Has(FieldSSRC) {
			p.talkerSSRC = m.GrantedSSRC
		}
		out = p.floorNews(out)
	case FloorIdle:
		p.taken, p.talker, p.talkerSSRC = false, "", 0
		out = p.floorNews(out)
	case FloorRevoke:
		switch p.state {
		case StateHasPermission, StatePendingRequest, StateQueued:
			p.denied, p.reason = true, "revoked: "+RevokeReason(m.RejectCause)
			p.taken = false
			p.enter(StatePendingRelease, p.cfg.T100)
			out = append(out, p.message(FloorRelease))
		}
	case FloorQueuePositionInfo:
		out = p.queueInfo(out, m)
	}
	return out
}

// Tick runs the timer that expired at the clock's now. T101: the Floor Request again, up
// to C101 in all, then a timeout the page sees as denied. T100: the Floor Release again,
// up to C100, then the participant stops waiting (§11.1.1).
func (p *Participant) Tick() []Message {
	if p.timer.IsZero() || p.now().Before(p.timer) {
		return nil
	}
	switch p.state {
	case StatePendingRequest:
		if p.tries < p.cfg.C101 {
			p.tries++
			p.timer = p.now().Add(p.cfg.T101)
			return []Message{p.request()}
		}
		p.denied, p.reason = true, "no answer from the floor control server"
		p.enter(StateNoPermission, 0)
	case StatePendingRelease:
		if p.tries < p.cfg.C100 {
			p.tries++
			p.timer = p.now().Add(p.cfg.T100)
			return []Message{p.message(FloorRelease)}
		}
		p.enter(StateNoPermission, 0)
	}
	return nil
}

// AskPosition sends a Floor Queue Position Request while queued (§6.2.4); the
// server answers with Floor Queue Position Info.
func (p *Participant) AskPosition() []Message {
	if p.state != StateQueued {
		return nil
	}
	return []Message{p.message(FloorQueuePositionRequest)}
}

// granted handles Floor Granted ('U: pending Request', 'U: queued', §6.2.4).
func (p *Participant) granted(out []Message, m *Message) []Message {
	switch p.state {
	case StatePendingRequest, StateQueued, StateHasPermission:
		p.denied = false
		p.until = p.now().Add(time.Duration(m.Duration) * time.Second)
		p.enter(StateHasPermission, 0)
	case StateNoPermission:
		// A grant the page no longer wants (its release crossed the grant, or T100 gave
		// up): give the floor back rather than hold the group silent.
		p.enter(StatePendingRelease, p.cfg.T100)
		out = append(out, p.message(FloorRelease))
	}
	return out
}

// floorNews moves on after Floor Taken or Floor Idle: they end a release and take the
// floor from a talker that missed its revoke; a pending request or a queued one waits on.
func (p *Participant) floorNews(out []Message) []Message {
	switch p.state {
	case StateNoPermission:
		p.denied = false
	case StateHasPermission, StatePendingRelease:
		p.denied = false
		p.enter(StateNoPermission, 0)
	case StateQueued:
		if !p.taken {
			p.enter(StateNoPermission, 0) // the server dropped the queue
		}
	}
	return out
}

// queueInfo handles Floor Queue Position Info ('U: pending Request', 'U: queued',
// §6.2.4).
func (p *Participant) queueInfo(out []Message, m *Message) []Message {
	if p.state != StatePendingRequest && p.state != StateQueued {
		return out
	}
	switch m.QueuePosition {
	case QueuePositionNotQueued:
		if p.state == StateQueued {
			p.enter(StateNoPermission, 0)
		}
		return out
	case QueuePositionUnknown:
		p.position = 0
	default:
		p.position = int(m.QueuePosition)
	}
	if p.state == StatePendingRequest {
		p.enter(StateQueued, 0)
	}
	return out
}

// enter changes state and (re)starts the retransmission timer: d == 0 stops it.
func (p *Participant) enter(s State, d time.Duration) {
	p.state, p.tries, p.timer = s, 0, time.Time{}
	if d > 0 {
		p.tries, p.timer = 1, p.now().Add(d)
	}
	if s != StateQueued {
		p.position = 0
	}
}

func (p *Participant) request() Message {
	m := p.message(FloorRequest)
	if p.priority > 0 {
		m.SetFloorPriority(p.priority)
	}
	return m
}

func (p *Participant) message(st Subtype) Message { return Message{Subtype: st, SSRC: p.ssrc} }
