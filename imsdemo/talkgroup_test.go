package imsdemo

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"dsmgw/floorctl"
	"dsmgw/imsdemo/mixer"
)

const testTalkGroupDomain = "ptt.test.invalid"

// pttPhones starts a talk group server and n phones with floor clients that join group
// g, each sending its own tone all the time (whether or not it holds the floor: the
// server must mix only the holder).
func pttPhones(t *testing.T, cfg Config, g string, names []string, freqs []float64) (*Server, []*testPhone) {
	t.Helper()
	cfg.TalkGroupDomain = testTalkGroupDomain
	s, _ := startServer(t, cfg)
	var phones []*testPhone
	for i, name := range names {
		p := newPhone(t, name, []mixer.Codec{mixer.PCMU, mixer.PCMA}[i%2], freqs[i], s.Addr("udp"))
		p.floor = newFloorClient(t, name, false)
		if code := p.call("sip:" + g + "@" + testTalkGroupDomain); code != 200 {
			t.Fatalf("%s: INVITE to the talk group: %d", name, code)
		}
		// Floor Idle arrives once the session is confirmed (late join, §6.3.5).
		p.floor.waitMessage(floorctl.FloorIdle, 0)
		phones = append(phones, p)
	}
	return s, phones
}

// talkGroupOf returns the floor control of a live talk group.
func talkGroupOf(t *testing.T, s *Server, g string) *talkGroup {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomKey{KindTalkGroup, g}]
	if r == nil || r.tg == nil {
		t.Fatalf("no talk group %s", g)
	}
	return r.tg
}

// Three phones in a talk group: only the floor holder is heard, by the two others; a
// request while the floor is taken is queued, and the queue is granted in order on
// release.
func TestTalkGroupOneTalkerAndQueue(t *testing.T) {
	t.Parallel()
	freqs := []float64{440, 1000, 1700}
	_, phones := pttPhones(t, Config{}, "team", []string{"alice", "bob", "carol"}, freqs)
	alice, bob, carol := phones[0], phones[1], phones[2]

	// Nobody holds the floor: nobody is heard, though everyone sends.
	hears(t, "alice, floor idle", alice.listen(time.Second), nil, freqs)

	alice.floor.request()
	alice.floor.waitView("granted", isFloor(floorctl.FloorIsGranted))
	bob.floor.waitView("taken by alice", takenBy(alice.aor()))
	carol.floor.waitView("taken by alice", takenBy(alice.aor()))
	hears(t, "bob, alice talks", bob.listen(time.Second), []float64{440}, []float64{1000, 1700})
	hears(t, "carol, alice talks", carol.listen(time.Second), []float64{440}, []float64{1000, 1700})
	hears(t, "alice, alice talks", alice.listen(time.Second), nil, freqs)

	// bob then carol ask while alice talks: queued in that order.
	bob.floor.request()
	bob.floor.waitView("queued first", queuedAt(1))
	carol.floor.request()
	carol.floor.waitView("queued second", queuedAt(2))

	alice.floor.release()
	bob.floor.waitView("granted after alice", isFloor(floorctl.FloorIsGranted))
	carol.floor.waitView("queued first after alice", queuedAt(1))
	alice.floor.waitView("taken by bob", takenBy(bob.aor()))
	hears(t, "alice, bob talks", alice.listen(time.Second), []float64{1000}, []float64{440, 1700})
	hears(t, "carol, bob talks", carol.listen(time.Second), []float64{1000}, []float64{440, 1700})

	bob.floor.release()
	carol.floor.waitView("granted after bob", isFloor(floorctl.FloorIsGranted))
	alice.floor.waitView("taken by carol", takenBy(carol.aor()))
	bob.floor.waitView("taken by carol", takenBy(carol.aor()))
	hears(t, "alice, carol talks", alice.listen(time.Second), []float64{1700}, []float64{440, 1000})

	carol.floor.release()
	for _, p := range phones {
		p.floor.waitView("idle", isFloor(floorctl.FloorIsIdle))
	}
	hears(t, "bob, floor idle again", bob.listen(time.Second), nil, freqs)
}

// The maximum talk time revokes the floor: a client that follows TS 24.380 releases on
// Floor Revoke; one that ignores it loses the floor when the grace runs out, and its
// audio stops passing.
func TestTalkGroupMaxTalkRevokes(t *testing.T) {
	t.Parallel()
	cfg := Config{Floor: floorctl.Config{MaxTalk: 2 * time.Second, RevokeGrace: time.Second}}
	freqs := []float64{440, 1000}
	s, phones := pttPhones(t, cfg, "short", []string{"alice", "bob"}, freqs)
	alice, bob := phones[0], phones[1]

	alice.floor.request()
	v := alice.floor.waitView("granted", isFloor(floorctl.FloorIsGranted))
	if v.Until.IsZero() {
		t.Errorf("granted without a Duration: %+v", v)
	}
	revoke := alice.floor.waitMessage(floorctl.FloorRevoke, 0)
	if revoke.RejectCause != floorctl.RevokeCauseTooLong {
		t.Errorf("Floor Revoke cause %d, want %d (talk burst too long)", revoke.RejectCause, floorctl.RevokeCauseTooLong)
	}
	// The participant releases at once; the reason stays for the page to show.
	alice.floor.waitView("revoked", func(v floorctl.View) bool {
		return v.Floor != floorctl.FloorIsGranted && strings.HasPrefix(v.Reason, "revoked")
	})
	bob.floor.waitView("idle after the revoke", isFloor(floorctl.FloorIsIdle))

	// A client that keeps talking through the revoke.
	rogue := newPhone(t, "rogue", mixer.PCMU, 1700, s.Addr("udp"))
	rogue.floor = newFloorClient(t, "rogue", true)
	if code := rogue.call("sip:short@" + testTalkGroupDomain); code != 200 {
		t.Fatalf("rogue: %d", code)
	}
	rogue.floor.waitMessage(floorctl.FloorIdle, 0)
	skip := len(rogue.floor.messages())
	rogue.floor.request()
	rogue.floor.waitMessage(floorctl.FloorGranted, skip)
	bob.floor.waitView("taken by the rogue", takenBy(rogue.aor()))
	hears(t, "bob, the rogue talks", bob.listen(time.Second), []float64{1700}, []float64{440})
	rogue.floor.waitMessage(floorctl.FloorRevoke, skip)
	bob.floor.waitView("idle once the grace ran out", isFloor(floorctl.FloorIsIdle))
	if st := talkGroupOf(t, s, "short").status(); st.Holder != "" {
		t.Fatalf("the floor is still held: %+v", st)
	}
	hears(t, "bob, the rogue revoked", bob.listen(time.Second), nil, []float64{440, 1700})
}

// A holder that hangs up frees the floor for the first in the queue.
func TestTalkGroupHolderLeaves(t *testing.T) {
	t.Parallel()
	_, phones := pttPhones(t, Config{}, "leavers", []string{"alice", "bob", "carol"}, []float64{440, 1000, 1700})
	alice, bob, carol := phones[0], phones[1], phones[2]
	alice.floor.request()
	alice.floor.waitView("granted", isFloor(floorctl.FloorIsGranted))
	bob.floor.request()
	bob.floor.waitView("queued", queuedAt(1))
	alice.hangup()
	bob.floor.waitView("granted after alice left", isFloor(floorctl.FloorIsGranted))
	carol.floor.waitView("taken by bob", takenBy(bob.aor()))
	hears(t, "carol, bob talks", carol.listen(time.Second), []float64{1000}, []float64{440})
}

// A talk group needs floor control in the offer; a conference refuses the floor stream.
func TestTalkGroupOffers(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{TalkGroupDomain: testTalkGroupDomain})

	plain := newPhone(t, "plain", mixer.PCMU, 440, s.Addr("udp"))
	if code := plain.call("sip:team@" + testTalkGroupDomain); code != 488 {
		t.Errorf("a talk group without MCPTT answered %d, want 488", code)
	}

	conf := newPhone(t, "confy", mixer.PCMU, 440, s.Addr("udp"))
	conf.floor = newFloorClient(t, "confy", false)
	if code := conf.call("sip:team@conf.test.invalid"); code != 200 {
		t.Fatalf("conference: %d", code)
	}
	if body := string(conf.sess.InviteResponse.Body()); !strings.Contains(body, "m=application 0 udp MCPTT") {
		t.Errorf("a conference did not refuse the floor stream:\n%s", body)
	}

	ptt := newPhone(t, "ptt", mixer.PCMU, 440, s.Addr("udp"))
	ptt.floor = newFloorClient(t, "ptt", false)
	if code := ptt.call("sip:team@" + testTalkGroupDomain); code != 200 {
		t.Fatalf("talk group: %d", code)
	}
	body := ptt.sess.InviteResponse.Body()
	m, err := floorctl.ParseMedia(body)
	if err != nil || m.Port == 0 || !m.HasFmtp || !m.Params.Queueing || m.Params.Priority != 5 {
		t.Errorf("floor control of the answer %+v, %v\n%s", m, err, body)
	}
	if st := s.Stats(); st.TalkGroups != 1 || st.Rooms != 2 {
		t.Errorf("stats %+v, want one talk group among two rooms", st)
	}
}

// Malformed floor messages are refused one by one: none changes the floor, none is
// answered, and a good request afterwards still works.
func TestTalkGroupMalformedFloorMessages(t *testing.T) {
	t.Parallel()
	s, phones := pttPhones(t, Config{}, "fuzzy", []string{"alice", "bob"}, []float64{440, 1000})
	alice, bob := phones[0], phones[1]
	tg := talkGroupOf(t, s, "fuzzy")
	const mcpt = "4d435054"
	table := []struct{ name, hex string }{
		{"truncated header", "80cc0002" + "11223344"},
		{"RTCP version 1", "40cc0002" + "11223344" + mcpt},
		{"ack bit on a floor request", "90cc0002" + "11223344" + mcpt},
		{"unknown subtype 00111", "87cc0002" + "11223344" + mcpt},
		{"length past the end", "80cc0004" + "11223344" + mcpt + "00020500"},
		{"floor priority of length 1", "80cc0003" + "11223344" + mcpt + "00010500"},
		{"field length past the end", "80cc0003" + "11223344" + mcpt + "00080500"},
		{"RTP, not RTCP", "8000000100000000" + "11223344"},
	}
	for _, tc := range table {
		b, err := hex.DecodeString(tc.hex)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		before := len(alice.floor.messages())
		alice.floor.sendRaw(b)
		// A good message from bob after the bad one: once its answer is back, the bad one
		// has been handled (one reader per port, but two ports: wait on the state).
		bob.floor.request()
		bob.floor.waitView("granted after "+tc.name, isFloor(floorctl.FloorIsGranted))
		if st := tg.status(); st.Holder != bob.id() || len(st.Queue) != 0 {
			t.Fatalf("%s: floor %+v", tc.name, st)
		}
		bob.floor.release()
		bob.floor.waitView("idle after "+tc.name, isFloor(floorctl.FloorIsIdle))
		for _, m := range alice.floor.messages()[before:] {
			if m.Subtype != floorctl.FloorTaken && m.Subtype != floorctl.FloorIdle {
				t.Errorf("%s: alice was answered %v", tc.name, m.String())
			}
		}
	}
	alice.floor.request()
	alice.floor.waitView("granted at the end", isFloor(floorctl.FloorIsGranted))
}

// id is the phone's member ID on the server: its Call-ID.
func (p *testPhone) id() string { return p.sess.InviteRequest.CallID().Value() }
