package imsdemo

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/confinfo"
)

// testSubscriber watches a room through Event: conference with the gateway's own parser
// and roster (asadapter), so the test proves the documents are what dsmgw consumes.
type testSubscriber struct {
	p       *testPhone
	callID  string
	tag     string
	toTag   string
	cseq    uint32
	target  sip.Uri
	routes  []sip.Uri
	room    sip.Uri
	roster  *confinfo.Roster
	docs    []*confinfo.Info
	states  []string // Subscription-State of each NOTIFY
	expires int      // granted by the last 2xx
}

func newSubscriber(t testing.TB, name, proxy string) *testSubscriber {
	return &testSubscriber{p: newPhone(t, name, 0, 0, proxy), roster: confinfo.NewRoster()}
}

// subscribe sends the initial SUBSCRIBE and returns the status code.
func (s *testSubscriber) subscribe(room string, expires int) int {
	t := s.p.t
	t.Helper()
	if err := sip.ParseUri(room, &s.room); err != nil {
		t.Fatal(err)
	}
	s.callID, s.tag, s.target = sip.GenerateTagN(16), sip.GenerateTagN(8), s.room
	res := s.send(expires, "conference")
	if res.IsSuccess() {
		s.toTag, _ = res.To().Params.Get("tag")
		if c := res.Contact(); c != nil {
			s.target = c.Address
		}
		rr := res.GetHeaders("Record-Route")
		for i := len(rr) - 1; i >= 0; i-- {
			var u sip.Uri
			if sip.ParseUri(strings.Trim(rr[i].Value(), "<>"), &u) == nil {
				s.routes = append(s.routes, u)
			}
		}
	}
	return res.StatusCode
}

// send sends a SUBSCRIBE (in the dialog once there is one) and returns the response.
func (s *testSubscriber) send(expires int, event string) *sip.Response {
	t := s.p.t
	t.Helper()
	s.cseq++
	req := sip.NewRequest(sip.SUBSCRIBE, s.target)
	if s.toTag == "" {
		for _, h := range s.p.routeHeaders() {
			req.AppendHeader(h)
		}
	}
	for _, r := range s.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	req.AppendHeader(&sip.FromHeader{DisplayName: s.p.display, Address: sip.Uri{Scheme: "sip", User: s.p.name, Host: "test.invalid"},
		Params: tagParams(s.tag)})
	to := &sip.ToHeader{Address: s.room, Params: sip.NewParams()}
	if s.toTag != "" {
		to.Params.Add("tag", s.toTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(s.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&s.p.dua.ContactHDR)
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Accept", confinfo.ContentType))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := s.p.cli.Do(ctx, req)
	if err != nil {
		t.Fatalf("SUBSCRIBE: %v", err)
	}
	if h := res.GetHeader("Expires"); h != nil {
		s.expires, _ = strconv.Atoi(h.Value())
	}
	return res
}

// next waits for the next NOTIFY and applies it to the roster.
func (s *testSubscriber) next() *confinfo.Info {
	t := s.p.t
	t.Helper()
	select {
	case req := <-s.p.notes:
		st := req.GetHeader("Subscription-State")
		if st == nil || req.GetHeader("Event") == nil || !strings.HasPrefix(req.GetHeader("Event").Value(), "conference") {
			t.Fatalf("NOTIFY without Subscription-State or Event: conference:\n%s", req)
		}
		s.states = append(s.states, st.Value())
		if testing.Verbose() {
			t.Logf("NOTIFY (%s):\n%s", st.Value(), req.Body())
		}
		if len(req.Body()) == 0 {
			return nil
		}
		ci, err := confinfo.Parse(req.Body(), confinfo.Limits{})
		if err != nil {
			t.Fatalf("the gateway's parser refuses the NOTIFY body: %v\n%s", err, req.Body())
		}
		if ok, err := s.roster.Apply(ci); err != nil || !ok {
			t.Fatalf("the gateway's roster does not apply version %d (%s): %v %v\n%s", ci.Version, ci.State, ok, err, req.Body())
		}
		s.docs = append(s.docs, ci)
		return ci
	case <-time.After(20 * time.Second):
		t.Fatal("no NOTIFY")
		return nil
	}
}

// participants is the roster as the gateway writes it to the DSM: entity → display and
// status.
func (s *testSubscriber) participants() map[string]string {
	f, _ := s.roster.Fields(confinfo.ParticipantNames{Display: "d", Status: "s"}, 0)
	return f
}

// waitFor applies NOTIFYs until the participants are want.
func (s *testSubscriber) waitFor(want map[string]string) {
	t := s.p.t
	t.Helper()
	for {
		got := s.participants()
		if equalMaps(got, want) {
			return
		}
		s.next()
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// who renders the DSM value of a participant.
func who(display, status string) string {
	return `{"d":"` + display + `","s":"` + status + `"}`
}
