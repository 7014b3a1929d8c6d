package imsdemo

import (
	"strings"
	"testing"
	"time"

	"dsmgw/imsdemo/mixer"
)

// The echo service returns what it receives; two callers get private echoes (each hears
// only itself), and it is not a room one can subscribe to.
func TestEchoReturnsTheTone(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	echo := "sip:echo@" + s.Addr("udp")
	a := newPhone(t, "alice", mixer.PCMA, 900, "")
	b := newPhone(t, "bob", mixer.PCMU, 1300, "")
	if code := a.call(echo); code != 200 {
		t.Fatalf("alice: %d", code)
	}
	if code := b.call(echo); code != 200 {
		t.Fatalf("bob: %d", code)
	}
	hears(t, "alice", a.listen(time.Second), []float64{900}, []float64{1300})
	hears(t, "bob", b.listen(time.Second), []float64{1300}, []float64{900})
	if st := s.Stats(); st.EchoSessions != 2 || st.Rooms != 0 {
		t.Fatalf("stats %+v", st)
	}
	sub := newSubscriber(t, "watcher", "")
	if code := sub.subscribe(echo, 600); code != 404 {
		t.Fatalf("SUBSCRIBE to the echo: %d", code)
	}
	a.hangup()
	b.hangup()
}

// Offers and request URIs the server cannot serve get a clear status.
func TestInviteRefusals(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{Mixer: mixer.Config{MaxParticipants: 1}})
	addr := s.Addr("udp")
	p := newPhone(t, "alice", mixer.PCMU, 500, "")
	if code := p.call("sip:full@" + addr); code != 200 {
		t.Fatalf("first in: %d", code)
	}
	for _, tc := range []struct {
		name   string
		target string
		offer  func([]byte) []byte
		want   int
	}{
		{"room full", "sip:full@" + addr, nil, 486},
		{"no room name", "sip:" + addr, nil, 404},
		{"room name with odd characters", "sip:a%2Fb@" + addr, nil, 404},
		{"no G.711", "sip:r@" + addr, func(b []byte) []byte {
			return []byte(strings.NewReplacer("RTP/AVP 0 101", "RTP/AVP 9 101", "rtpmap:0 PCMU", "rtpmap:9 G722").Replace(string(b)))
		}, 488},
		{"not SDP", "sip:r@" + addr, func([]byte) []byte { return []byte("hello") }, 400},
		{"no offer", "sip:r@" + addr, func([]byte) []byte { return nil }, 488},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newPhone(t, "bob", mixer.PCMU, 700, "")
			if tc.offer != nil {
				q.mangle = tc.offer
			}
			if code := q.call(tc.target); code != tc.want {
				t.Fatalf("status %d, want %d", code, tc.want)
			}
		})
	}
	p.hangup()
}
