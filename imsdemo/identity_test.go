package imsdemo

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/imsdemo/mixer"
)

func TestIdentity(t *testing.T) {
	for _, tc := range []struct {
		name          string
		from, pai     string
		entity, label string
	}{
		{"From only", `"Alice" <sip:alice@example.net;user=phone>;tag=1`, "", "sip:alice@example.net", "Alice"},
		{"P-Asserted-Identity wins", `<sip:anon@example.net>;tag=1`, `"Bob B." <sip:bob@ims.example.net>`, "sip:bob@ims.example.net", "Bob B."},
		{"its SIP URI, not its tel URI", `"C" <sip:c@x>;tag=1`, `<tel:+4412345>, <sip:carol@ims.example.net>`, "sip:carol@ims.example.net", "C"},
		{"a tel URI alone is not used", `"D" <sip:dave@x>;tag=1`, `<tel:+4412345>`, "sip:dave@x", "D"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := "INVITE sip:r@conf SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nFrom: " + tc.from +
				"\r\nTo: <sip:r@conf>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n"
			if tc.pai != "" {
				raw += "P-Asserted-Identity: " + tc.pai + "\r\n"
			}
			raw += "Content-Length: 0\r\n\r\n"
			msg, err := sip.ParseMessage([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			u, display := identity(msg.(*sip.Request))
			if u.String() != tc.entity || display != tc.label {
				t.Fatalf("identity %s %q, want %s %q", u.String(), display, tc.entity, tc.label)
			}
		})
	}
}

// The floor hook a talk group's floor server will use: without the floor a participant
// is not heard, with it again.
func TestFloorGate(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	room := "sip:floor@" + s.Addr("udp")
	a := newPhone(t, "alice", mixer.PCMU, 500, "")
	b := newPhone(t, "bob", mixer.PCMU, 1100, "")
	a.call(room)
	b.call(room)
	hears(t, "bob", b.listen(time.Second), []float64{500}, []float64{1100})
	l := s.legByCallID(a.sess.InviteRequest.CallID().Value())
	l.setFloor(false)
	hears(t, "bob while alice has no floor", b.listen(time.Second), nil, []float64{500, 1100})
	hears(t, "alice without the floor still", a.listen(time.Second), []float64{1100}, []float64{500})
	l.setFloor(true)
	hears(t, "bob after alice got the floor", b.listen(time.Second), []float64{500}, []float64{1100})
	a.hangup()
	b.hangup()
}
