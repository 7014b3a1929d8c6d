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

// fakeClock is the injected clock of the state machine tests: time moves only when a
// step says so, so no test depends on the machine's speed.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)} }

// describe renders an outbound message in the short form of the tables. It also marshals
// the message: the server must only produce messages the codec accepts.
func describe(t *testing.T, o Outbound) string {
	t.Helper()
	if _, err := o.Msg.Marshal(); err != nil {
		t.Fatalf("server produced an invalid %v: %v", o.Msg.Subtype, err)
	}
	m := o.Msg
	switch m.Subtype {
	case FloorGranted:
		return fmt.Sprintf("%s:granted %ds", o.To, m.Duration)
	case FloorTaken:
		return fmt.Sprintf("%s:taken %s seq%d", o.To, m.GrantedPartyID, m.SequenceNumber)
	case FloorIdle:
		return fmt.Sprintf("%s:idle seq%d", o.To, m.SequenceNumber)
	case FloorDeny:
		return fmt.Sprintf("%s:deny %d", o.To, m.RejectCause)
	case FloorRevoke:
		return fmt.Sprintf("%s:revoke %d", o.To, m.RejectCause)
	case FloorQueuePositionInfo:
		return fmt.Sprintf("%s:queued %d", o.To, m.QueuePosition)
	case FloorAck:
		return fmt.Sprintf("%s:ack %v", o.To, m.MessageType)
	}
	return fmt.Sprintf("%s:%v", o.To, m.Subtype)
}

// step is one input of a server table test and the messages it must produce, in order.
//
//	join a [noqueue] [prio N]  a joins (user ID "a"; SSRC from the name)
//	req a [N]                  a sends Floor Request [with Floor Priority N]
//	rel a [ack]                a sends Floor Release [asking for an acknowledgement]
//	qpr a                      a sends Floor Queue Position Request
//	leave a                    a leaves
//	tick 30s                   the clock moves on, then Tick
type step struct {
	do   string
	want []string
}

func runServer(t *testing.T, cfg Config, steps []step) *Server {
	t.Helper()
	clk := newFakeClock()
	s, err := NewServer(cfg, serverSSRC, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range steps {
		f := strings.Fields(st.do)
		var out []Outbound
		switch f[0] {
		case "join":
			m := Member{ID: f[1], UserID: f[1], SSRC: uint32(f[1][0]), Queueing: true, MaxPriority: 255}
			for j := 2; j < len(f); j++ {
				switch f[j] {
				case "noqueue":
					m.Queueing = false
				case "prio":
					n, _ := strconv.Atoi(f[j+1])
					m.MaxPriority = uint8(n)
					j++
				}
			}
			out, err = s.Join(m)
		case "req":
			msg := Message{Subtype: FloorRequest, SSRC: uint32(f[1][0])}
			if len(f) > 2 {
				n, _ := strconv.Atoi(f[2])
				msg.SetFloorPriority(uint8(n))
			}
			out, err = s.Receive(f[1], &msg)
		case "rel":
			msg := Message{Subtype: FloorRelease, AckRequired: len(f) > 2, SSRC: uint32(f[1][0])}
			out, err = s.Receive(f[1], &msg)
		case "qpr":
			out, err = s.Receive(f[1], &Message{Subtype: FloorQueuePositionRequest})
		case "ack":
			msg := Message{Subtype: FloorAck}
			msg.SetSource(SourceParticipant)
			msg.SetMessageType(FloorGranted)
			out, err = s.Receive(f[1], &msg)
		case "leave":
			out = s.Leave(f[1])
		case "tick":
			d, _ := time.ParseDuration(f[1])
			clk.advance(d)
			out = s.Tick()
		default:
			t.Fatalf("step %d: unknown %q", i, st.do)
		}
		if err != nil {
			t.Fatalf("step %d %q: %v", i, st.do, err)
		}
		var got []string
		for _, o := range out {
			got = append(got, describe(t, o))
		}
		if !slices.Equal(got, st.want) {
			t.Fatalf("step %d %q:\n got %q\nwant %q", i, st.do, got, st.want)
		}
	}
	return s
}

func TestServerTransitions(t *testing.T) {
	join3 := []step{
		{"join a", []string{"a:idle seq0"}},
		{"join b", []string{"b:idle seq0"}},
		{"join c", []string{"c:idle seq0"}},
	}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"grant when idle, idle on release", Config{}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"rel a", []string{"a:idle seq2", "b:idle seq2", "c:idle seq2"}},
		)},
		{"requests while taken are queued and granted in order", Config{}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"req b", []string{"b:queued 1"}},
			step{"req c", []string{"c:queued 2"}},
			step{"rel a", []string{"b:granted 30s", "a:taken b seq2", "c:taken b seq2", "c:queued 1"}},
			step{"rel b", []string{"c:granted 30s", "a:taken c seq3", "b:taken c seq3"}},
			step{"rel c", []string{"a:idle seq4", "b:idle seq4", "c:idle seq4"}},
		)},
		{"higher priority goes ahead, equal keeps arrival", Config{}, append(slices.Clone(join3),
			step{"join d", []string{"d:idle seq0"}},
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1", "d:taken a seq1"}},
			step{"req b 1", []string{"b:queued 1"}},
			step{"req c 1", []string{"c:queued 2"}},
			step{"req d 9", []string{"d:queued 1", "b:queued 2", "c:queued 3"}},
			step{"rel a", []string{"d:granted 30s", "a:taken d seq2", "b:taken d seq2", "c:taken d seq2",
				"b:queued 1", "c:queued 2"}},
		)},
		{"priority capped by the negotiated mc_priority", Config{}, []step{
			{"join a", []string{"a:idle seq0"}},
			{"join b prio 2", []string{"b:idle seq0"}},
			{"join c", []string{"c:idle seq0"}},
			{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			{"req c 3", []string{"c:queued 1"}},
			{"req b 200", []string{"b:queued 2"}},
		}},
		{"maximum talk time revokes, release after revoke grants the next", Config{MaxTalk: 10 * time.Second}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 10s", "b:taken a seq1", "c:taken a seq1"}},
			step{"req b", []string{"b:queued 1"}},
			step{"tick 9s", nil},
			step{"tick 1s", []string{"a:revoke 2"}},
			step{"rel a", []string{"b:granted 10s", "a:taken b seq2", "c:taken b seq2"}},
		)},
		{"revoke grace expires: the floor is taken back", Config{MaxTalk: 10 * time.Second, RevokeGrace: 2 * time.Second}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 10s", "b:taken a seq1", "c:taken a seq1"}},
			step{"tick 10s", []string{"a:revoke 2"}},
			step{"tick 1s", nil},
			step{"tick 1s", []string{"a:idle seq2", "b:idle seq2", "c:idle seq2"}},
			step{"tick 1h", nil},
		)},
		{"holder leaves: the next queued is granted", Config{}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"req c", []string{"c:queued 1"}},
			step{"leave a", []string{"c:granted 30s", "b:taken c seq2"}},
			step{"leave a", nil},
		)},
		{"holder leaves, nobody queued: idle", Config{}, append(slices.Clone(join3),
			step{"req b", []string{"b:granted 30s", "a:taken b seq1", "c:taken b seq1"}},
			step{"leave b", []string{"a:idle seq2", "c:idle seq2"}},
		)},
		{"queued participant leaves: the queue moves up", Config{}, append(slices.Clone(join3),
			step{"join d", []string{"d:idle seq0"}},
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1", "d:taken a seq1"}},
			step{"req b", []string{"b:queued 1"}},
			step{"req c", []string{"c:queued 2"}},
			step{"req d", []string{"d:queued 3"}},
			step{"leave c", []string{"d:queued 2"}},
			step{"rel a", []string{"b:granted 30s", "a:taken b seq2", "d:taken b seq2", "d:queued 1"}},
		)},
		{"queued participant releases: request cancelled", Config{}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"req b", []string{"b:queued 1"}},
			step{"req c", []string{"c:queued 2"}},
			step{"rel b ack", []string{"b:ack Floor Release", "b:taken a seq1", "c:queued 1"}},
			step{"rel a", []string{"c:granted 30s", "a:taken c seq2", "b:taken c seq2"}},
		)},
		{"no queueing: deny cause 1", Config{NoQueueing: true}, []step{
			{"join a", []string{"a:idle seq0"}},
			{"join b", []string{"b:idle seq0"}},
			{"req a", []string{"a:granted 30s", "b:taken a seq1"}},
			{"req b", []string{"b:deny 1"}},
		}},
		{"participant without mc_queueing: deny cause 1", Config{}, []step{
			{"join a", []string{"a:idle seq0"}},
			{"join b noqueue", []string{"b:idle seq0"}},
			{"req a", []string{"a:granted 30s", "b:taken a seq1"}},
			{"req b", []string{"b:deny 1"}},
		}},
		{"queue full: deny cause 7", Config{QueueLimit: 1}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"req b", []string{"b:queued 1"}},
			step{"req c", []string{"c:deny 7"}},
		)},
		{"retransmitted requests and releases get the state again", Config{}, append(slices.Clone(join3),
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"tick 12s", nil},
			step{"req a", []string{"a:granted 18s"}},
			step{"req b", []string{"b:queued 1"}},
			step{"req b", []string{"b:queued 1"}},
			step{"rel c", []string{"c:taken a seq1"}},
			step{"rel a", []string{"b:granted 30s", "a:taken b seq2", "c:taken b seq2"}},
			step{"rel b", []string{"a:idle seq3", "b:idle seq3", "c:idle seq3"}},
			step{"rel b", []string{"b:idle seq3"}},
		)},
		{"queue position request", Config{}, append(slices.Clone(join3),
			step{"qpr a", []string{"a:queued 254"}},
			step{"req a", []string{"a:granted 30s", "b:taken a seq1", "c:taken a seq1"}},
			step{"req c", []string{"c:queued 1"}},
			step{"qpr c", []string{"c:queued 1"}},
			step{"ack c", nil},
		)},
		{"late joiner learns the talker", Config{}, []step{
			{"join a", []string{"a:idle seq0"}},
			{"req a", []string{"a:granted 30s"}},
			{"join b", []string{"b:taken a seq1"}},
			{"req b", []string{"b:queued 1"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runServer(t, tt.cfg, tt.steps) })
	}
}

func TestServerStatusAndErrors(t *testing.T) {
	s := runServer(t, Config{MaxTalk: time.Minute}, []step{
		{"join a", []string{"a:idle seq0"}},
		{"join b", []string{"b:idle seq0"}},
		{"join c", []string{"c:idle seq0"}},
		{"req a", []string{"a:granted 60s", "b:taken a seq1", "c:taken a seq1"}},
		{"req c", []string{"c:queued 1"}},
	})
	st := s.Status()
	if st.Holder != "a" || !slices.Equal(st.Queue, []string{"c"}) || st.Revoke {
		t.Fatalf("status %+v", st)
	}
	if id, ok := s.Holder(); !ok || id != "a" {
		t.Fatalf("Holder %q %v", id, ok)
	}
	if d, ok := s.Deadline(); !ok || !d.Equal(st.Until) {
		t.Fatalf("Deadline %v %v, status until %v", d, ok, st.Until)
	}
	if _, err := s.Join(Member{ID: "a"}); !errors.Is(err, ErrDuplicateParticipant) {
		t.Fatalf("duplicate join: %v", err)
	}
	if _, err := s.Join(Member{ID: "z", UserID: strings.Repeat("x", 256)}); !errors.Is(err, ErrFieldTooLong) {
		t.Fatalf("long user ID: %v", err)
	}
	if _, err := s.Receive("z", &Message{Subtype: FloorRequest}); !errors.Is(err, ErrUnknownParticipant) {
		t.Fatalf("unknown participant: %v", err)
	}
	if out, err := s.Receive("b", &Message{Subtype: FloorGranted}); err != nil || out != nil {
		t.Fatalf("a server-bound Floor Granted must be discarded: %v %v", out, err)
	}
	for _, cfg := range []Config{{MaxTalk: -1}, {MaxTalk: 70000 * time.Second}, {QueueLimit: 254}, {C101: -1}, {T100: -1}} {
		if _, err := NewServer(cfg, 1, nil); !errors.Is(err, ErrBadConfig) {
			t.Errorf("config %+v: %v", cfg, err)
		}
	}
}
