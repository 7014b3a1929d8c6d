package floorctl

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pstep is one input of a participant table test, what it must send and the state and
// view after it.
//
//	press / let-go / ask       the page's intents (Request, Release, AskPosition)
//	granted N [ack]            Floor Granted with Duration N s [asking for a Floor Ack]
//	taken ID [ack]             Floor Taken naming ID (SSRC 0x99)
//	idle [ack] / deny N / revoke N / queued N
//	tick D                     the clock moves on by D, then Tick
type pstep struct {
	do    string
	send  []string
	state State
	view  string
}

// showSent renders what a participant sends; every message must marshal.
func showSent(t *testing.T, ms []Message) []string {
	t.Helper()
	var s []string
	for _, m := range ms {
		if _, err := m.Marshal(); err != nil {
			t.Fatalf("participant produced an invalid %v: %v", m.Subtype, err)
		}
		if m.SSRC != participantSSRC {
			t.Fatalf("%v sent with SSRC %x", m.Subtype, m.SSRC)
		}
		switch m.Subtype {
		case FloorRequest:
			if m.Has(FieldFloorPriority) {
				s = append(s, fmt.Sprintf("request p%d", m.FloorPriority))
			} else {
				s = append(s, "request")
			}
		case FloorRelease:
			s = append(s, "release")
		case FloorAck:
			s = append(s, "ack "+m.MessageType.String())
		case FloorQueuePositionRequest:
			s = append(s, "position?")
		default:
			s = append(s, m.Subtype.String())
		}
	}
	return s
}

// showView renders a view relative to the test's start time.
func showView(v View, start time.Time) string {
	s := string(v.Floor)
	switch v.Floor {
	case FloorIsTaken:
		s += fmt.Sprintf(" %s/%x", v.Talker, v.TalkerSSRC)
	case FloorIsQueued:
		s += fmt.Sprintf(" %d behind %s", v.Position, v.Talker)
	case FloorIsGranted:
		s += fmt.Sprintf(" until %v", v.Until.Sub(start))
	}
	if v.Reason != "" {
		s += " (" + v.Reason + ")"
	}
	if v.Pending {
		s += " pending"
	}
	return s
}

func runParticipant(t *testing.T, cfg Config, prio uint8, steps []pstep) {
	t.Helper()
	clk := newFakeClock()
	start := clk.now()
	p, err := NewParticipant(cfg, participantSSRC, prio, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		f := strings.Fields(st.do)
		n := 0
		if len(f) > 1 {
			n, _ = strconv.Atoi(f[1])
		}
		in := Message{SSRC: serverSSRC, AckRequired: f[len(f)-1] == "ack"}
		var out []Message
		switch f[0] {
		case "press":
			out = p.Request()
		case "let-go":
			out = p.Release()
		case "ask":
			out = p.AskPosition()
		case "tick":
			d, _ := time.ParseDuration(f[1])
			clk.advance(d)
			out = p.Tick()
		default:
			switch f[0] {
			case "granted":
				in.Subtype = FloorGranted
				in.SetDuration(uint16(n))
			case "taken":
				in.Subtype = FloorTaken
				in.SetGrantedPartyID([]byte(f[1]))
				in.SetSequenceNumber(1)
				in.SetGrantedSSRC(0x99)
			case "idle":
				in.Subtype = FloorIdle
				in.SetSequenceNumber(2)
			case "deny":
				in.Subtype = FloorDeny
				in.SetRejectCause(uint16(n), nil)
			case "revoke":
				in.Subtype = FloorRevoke
				in.SetRejectCause(uint16(n), nil)
			case "queued":
				in.Subtype = FloorQueuePositionInfo
				in.SetQueueInfo(uint8(n), 0)
			default:
				t.Fatalf("step %d: unknown %q", i, st.do)
			}
			// Through the codec, as from the network.
			wire, err := in.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var m Message
			if err := m.Unmarshal(wire); err != nil {
				t.Fatal(err)
			}
			out = p.Receive(&m)
		}
		if got := showSent(t, out); !slices.Equal(got, st.send) {
			t.Fatalf("step %d %q sent %q, want %q", i, st.do, got, st.send)
		}
		if p.State() != st.state {
			t.Fatalf("step %d %q: state %v, want %v", i, st.do, p.State(), st.state)
		}
		if got := showView(p.View(), start); got != st.view {
			t.Fatalf("step %d %q: view %q, want %q", i, st.do, got, st.view)
		}
		if p.MaySend() != (st.state == StateHasPermission) {
			t.Fatalf("step %d: MaySend %v in %v", i, p.MaySend(), st.state)
		}
	}
}

const (
	none    = StateNoPermission
	pendReq = StatePendingRequest
	has     = StateHasPermission
	pendRel = StatePendingRelease
	queued  = StateQueued
)

func TestParticipantTransitions(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		prio  uint8
		steps []pstep
	}{
		{"talk burst", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"press", nil, pendReq, "idle pending"},
			{"granted 30", nil, has, "granted until 30s"},
			{"let-go", []string{"release"}, pendRel, "idle pending"},
			{"idle", nil, none, "idle"},
		}},
		{"requests carry the priority", Config{}, 7, []pstep{
			{"press", []string{"request p7"}, pendReq, "idle pending"},
			{"tick 500ms", []string{"request p7"}, pendReq, "idle pending"},
		}},
		{"another talks, queued, granted after", Config{}, 0, []pstep{
			{"taken sip:bob", nil, none, "taken sip:bob/99"},
			{"press", []string{"request"}, pendReq, "taken sip:bob/99 pending"},
			{"queued 2", nil, queued, "queued 2 behind sip:bob"},
			{"queued 1", nil, queued, "queued 1 behind sip:bob"},
			{"ask", []string{"position?"}, queued, "queued 1 behind sip:bob"},
			{"taken sip:carol", nil, queued, "queued 1 behind sip:carol"},
			{"granted 20", nil, has, "granted until 20s"},
			{"let-go", []string{"release"}, pendRel, "idle pending"},
			{"taken sip:dave", nil, none, "taken sip:dave/99"},
		}},
		{"denied, then the floor moves on", Config{}, 0, []pstep{
			{"taken sip:bob", nil, none, "taken sip:bob/99"},
			{"press", []string{"request"}, pendReq, "taken sip:bob/99 pending"},
			{"deny 1", nil, none, "denied (another participant has permission)"},
			{"idle", nil, none, "idle (another participant has permission)"},
			{"press", []string{"request"}, pendReq, "idle pending"},
		}},
		{"queue full", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"deny 7", nil, none, "denied (queue full)"},
		}},
		{"revoked for talking too long", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"granted 30", nil, has, "granted until 30s"},
			{"revoke 2", []string{"release"}, pendRel, "denied (revoked: talk burst too long) pending"},
			{"taken sip:bob", nil, none, "taken sip:bob/99 (revoked: talk burst too long)"},
		}},
		{"T101 retransmits C101 times, then times out", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"tick 499ms", nil, pendReq, "idle pending"},
			{"tick 1ms", []string{"request"}, pendReq, "idle pending"},
			{"tick 500ms", []string{"request"}, pendReq, "idle pending"},
			{"tick 500ms", nil, none, "denied (no answer from the floor control server)"},
			{"tick 1h", nil, none, "denied (no answer from the floor control server)"},
			{"granted 30", []string{"release"}, pendRel, "denied (no answer from the floor control server) pending"},
			{"idle", nil, none, "idle (no answer from the floor control server)"},
		}},
		{"T100 retransmits C100 times, then gives up", Config{T100: time.Second, C100: 2}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"granted 30", nil, has, "granted until 30s"},
			{"let-go", []string{"release"}, pendRel, "idle pending"},
			{"tick 1s", []string{"release"}, pendRel, "idle pending"},
			{"tick 1s", nil, none, "idle"},
		}},
		{"release while the request is pending", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"let-go", []string{"release"}, pendRel, "idle pending"},
			{"granted 30", nil, pendRel, "idle pending"},
			{"idle", nil, none, "idle"},
			{"let-go", nil, none, "idle"},
		}},
		{"release while queued", Config{}, 0, []pstep{
			{"taken sip:bob", nil, none, "taken sip:bob/99"},
			{"press", []string{"request"}, pendReq, "taken sip:bob/99 pending"},
			{"queued 1", nil, queued, "queued 1 behind sip:bob"},
			{"let-go", []string{"release"}, pendRel, "taken sip:bob/99 pending"},
			{"taken sip:bob", nil, none, "taken sip:bob/99"},
		}},
		{"press again while releasing", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"granted 30", nil, has, "granted until 30s"},
			{"let-go", []string{"release"}, pendRel, "idle pending"},
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"idle", nil, pendReq, "idle pending"},
			{"granted 30", nil, has, "granted until 30s"},
		}},
		{"acknowledgements asked for are sent", Config{}, 0, []pstep{
			{"taken sip:bob ack", []string{"ack Floor Taken"}, none, "taken sip:bob/99"},
			{"press", []string{"request"}, pendReq, "taken sip:bob/99 pending"},
			{"granted 30 ack", []string{"ack Floor Granted"}, has, "granted until 30s"},
			{"let-go", []string{"release"}, pendRel, "idle pending"},
			{"idle ack", []string{"ack Floor Idle"}, none, "idle"},
		}},
		{"grant lost, the floor idles under the talker", Config{}, 0, []pstep{
			{"press", []string{"request"}, pendReq, "idle pending"},
			{"granted 30", nil, has, "granted until 30s"},
			{"idle", nil, none, "idle"},
		}},
		{"queue dropped by the server", Config{}, 0, []pstep{
			{"taken sip:bob", nil, none, "taken sip:bob/99"},
			{"press", []string{"request"}, pendReq, "taken sip:bob/99 pending"},
			{"queued 255", nil, queued, "queued 0 behind sip:bob"},
			{"queued 254", nil, none, "taken sip:bob/99"},
			{"queued 3", nil, none, "taken sip:bob/99"},
		}},
		{"stray server messages change nothing", Config{}, 0, []pstep{
			{"deny 1", nil, none, "idle"},
			{"revoke 2", nil, none, "idle"},
			{"queued 1", nil, none, "idle"},
			{"ask", nil, none, "idle"},
			{"let-go", nil, none, "idle"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runParticipant(t, tt.cfg, tt.prio, tt.steps) })
	}
}

func TestParticipantDeadline(t *testing.T) {
	clk := newFakeClock()
	p, err := NewParticipant(Config{}, participantSSRC, 0, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Deadline(); ok {
		t.Fatal("a timer runs before any request")
	}
	p.Request()
	if d, ok := p.Deadline(); !ok || !d.Equal(clk.now().Add(DefaultConfig().T101)) {
		t.Fatalf("T101 deadline %v %v", d, ok)
	}
	if _, err := NewParticipant(Config{C100: -1}, 1, 0, nil); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad config: %v", err)
	}
}

// TestServerAndParticipants runs three participants against a server through the codec:
// the talk group of the issue, without sockets.
func TestServerAndParticipants(t *testing.T) {
	clk := newFakeClock()
	srv, err := NewServer(Config{MaxTalk: 10 * time.Second}, serverSSRC, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", "b", "c"}
	parts := map[string]*Participant{}
	var toServer func(from string, ms []Message)
	deliver := func(out []Outbound) {
		for len(out) > 0 {
			o := out[0]
			out = out[1:]
			wire, err := o.Msg.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var m Message
			if err := m.Unmarshal(wire); err != nil {
				t.Fatal(err)
			}
			toServer(o.To, parts[o.To].Receive(&m))
		}
	}
	toServer = func(from string, ms []Message) {
		for _, m := range ms {
			wire, _ := m.Marshal()
			var d Message
			if err := d.Unmarshal(wire); err != nil {
				t.Fatal(err)
			}
			out, err := srv.Receive(from, &d)
			if err != nil {
				t.Fatal(err)
			}
			deliver(out)
		}
	}
	for i, id := range ids {
		parts[id], _ = NewParticipant(Config{}, uint32(i+1), 0, clk.now)
		out, err := srv.Join(Member{ID: id, UserID: "sip:" + id + "@example.com", SSRC: uint32(i + 1), Queueing: true})
		if err != nil {
			t.Fatal(err)
		}
		deliver(out)
	}
	floors := func() string {
		var s []string
		for _, id := range ids {
			v := parts[id].View()
			s = append(s, fmt.Sprintf("%s=%s%s%d", id, v.Floor, strings.TrimPrefix(v.Talker, "sip:"), v.Position))
		}
		return strings.Join(s, " ")
	}
	check := func(want string) {
		t.Helper()
		if got := floors(); got != want {
			t.Fatalf("floors %q, want %q", got, want)
		}
	}
	check("a=idle0 b=idle0 c=idle0")
	toServer("a", parts["a"].Request())
	check("a=granted0 b=takena@example.com0 c=takena@example.com0")
	toServer("b", parts["b"].Request())
	toServer("c", parts["c"].Request())
	check("a=granted0 b=queueda@example.com1 c=queueda@example.com2")
	toServer("a", parts["a"].Release())
	check("a=takenb@example.com0 b=granted0 c=queuedb@example.com1")
	clk.advance(10 * time.Second)
	deliver(srv.Tick()) // revoke → b releases → c granted
	check("a=takenc@example.com0 b=takenc@example.com0 c=granted0")
	if v := parts["b"].View(); v.Reason != "revoked: talk burst too long" {
		t.Fatalf("b's reason %q", v.Reason)
	}
	deliver(srv.Leave("c"))
	check("a=idle0 b=idle0 c=granted0")
}
