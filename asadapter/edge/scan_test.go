package edge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// readMsg reads a message of testdata.
func readMsg(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// crlf turns a message written with \n line ends into one with CRLF.
func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestScanTestdata(t *testing.T) {
	for name, want := range map[string]struct {
		request          bool
		method           Method
		status           int
		callID, from, to string
		vias, strip, cl  int
	}{
		"invite.sip":   {true, MethodInvite, 0, "a84b4c76e66710@pc33.example", "1928301774", "", 2, 3, 124},
		"register.sip": {true, MethodRegister, 0, "reg-call-1@192.0.2.10", "reg-tag", "", 1, 0, 0},
		"options.sip":  {true, MethodOptions, 0, "652344186744587604496541", "6663623130313865313363340131323236333634363632", "", 1, 0, 0},
		"bye.sip":      {true, MethodBye, 0, "dialog-call-1", "remote-tag", "local-tag", 1, 0, 0},
		"ringing.sip":  {false, MethodOther, 180, "outgoing-1", "ours", "theirs", 1, 1, 0},
	} {
		t.Run(name, func(t *testing.T) {
			b := readMsg(t, name)
			var m Message
			if err := Scan(b, &m); err != nil {
				t.Fatal(err)
			}
			got := struct {
				request          bool
				method           Method
				status           int
				callID, from, to string
				vias, strip, cl  int
			}{m.Request, m.Method, m.Status, string(m.CallID(b)), string(m.FromTag(b)), string(m.ToTag(b)),
				m.nvia, m.nstrip, m.ContentLength}
			if got != want {
				t.Fatalf("scanned %+v, want %+v", got, want)
			}
		})
	}
}

func TestScanRefuses(t *testing.T) {
	ok := "INVITE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\nFrom: <sip:x@y>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 INVITE\nContent-Length: 0\n\n"
	for name, tc := range map[string]struct {
		msg  string
		want error
	}{
		"no Via":               {strings.Replace(ok, "Via: SIP/2.0/UDP h;branch=z9hG4bK1\n", "", 1), ErrBadHeader},
		"two From":             {strings.Replace(ok, "To:", "From: <sip:z@y>\nTo:", 1), ErrBadHeader},
		"empty Call-ID":        {strings.Replace(ok, "Call-ID: c", "Call-ID: ", 1), ErrBadHeader},
		"bad Content-Length":   {strings.Replace(ok, "Content-Length: 0", "Content-Length: -1", 1), ErrBadHeader},
		"two Content-Lengths":  {strings.Replace(ok, "Content-Length: 0", "Content-Length: 0\nl: 5", 1), ErrBadHeader},
		"body cut short":       {strings.Replace(ok, "Content-Length: 0", "Content-Length: 10", 1), ErrIncomplete},
		"no end of headers":    {strings.TrimSuffix(ok, "\n"), ErrIncomplete},
		"empty tag":            {strings.Replace(ok, "<sip:a@b>\n", "<sip:a@b>;tag=\n", 1), ErrBadHeader},
		"bare LF":              {strings.Replace(ok, "Call-ID: c\n", "Call-ID: c\rX\n", 1), ErrBadHeader},
		"HTTP":                 {"GET / HTTP/1.1\nHost: x\n\n", ErrNotSIP},
		"status 99":            {"SIP/2.0 099 Odd\n\n", ErrNotSIP},
		"method with a space":  {"IN VITE sip:a@b SIP/2.0\n\n", ErrNotSIP},
		"header without colon": {strings.Replace(ok, "CSeq: 1 INVITE", "CSeq 1 INVITE", 1), ErrBadHeader},
	} {
		t.Run(name, func(t *testing.T) {
			var m Message
			if err := Scan(crlf(tc.msg), &m); !errors.Is(err, tc.want) {
				t.Fatalf("Scan: %v, want %v", err, tc.want)
			}
		})
	}
	var m Message
	if err := Scan(crlf(ok), &m); err != nil {
		t.Fatalf("the well-formed message: %v", err)
	}
}

// TestTagOf: "-" stands for a malformed tag (refused).
func TestTagOf(t *testing.T) {
	for v, want := range map[string]string{
		`<sip:a@b>;tag=x1`:                  "x1",
		`"a;tag=no" <sip:a@b;tag=no>;tag=y`: "y",
		`"q\"<" <sip:a@b>;tag=z`:            "z",
		`sip:a@b;tag=w;other=1`:             "w",
		`<sip:a@b>`:                         "",
		`sip:a@b`:                           "",
		`<sip:a@b>; TAG = sp ;x`:            "",
		`<sip:a@b>;tAg=x`:                   "",
		`<sip:a@b>;tagx=1`:                  "",
		`<sip:a@b>;tag=`:                    "-",
		`<sip:a@b>;tag==`:                   "-",
		`<sip:a@b>;tag=! 0`:                 "-",
		`<sip:a@b;tag=1`:                    "-",
		`"unclosed <sip:a@b>;tag=1`:         "-",
	} {
		b := []byte(v)
		got := "-"
		if s := tagOf(b, span{0, len(b)}); s.start >= 0 {
			got = string(s.of(b))
		}
		if got != want {
			t.Errorf("tagOf(%q) = %q, want %q", v, got, want)
		}
	}
}

// seeds are the fuzz targets' seed messages: testdata and a few odd shapes.
func seeds(f *testing.F) [][]byte {
	ents, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".sip") {
			out = append(out, readMsg(f, e.Name()))
		}
	}
	return append(out, []byte("\r\n\r\n"), []byte("SIP/2.0 200 OK\r\n\r\n"),
		crlf("ACK sip:a@b SIP/2.0\nv: SIP/2.0/UDP h\nf: <sip:x@y>;tag=1\nt: <sip:a@b>;tag=2\ni: c\nCSeq: 1 ACK\n folded\nl: 0\n\n"))
}

// FuzzScan: no input panics the scanner; what it accepts, sipgo's parser reads with the
// same Call-ID and tags where both read them (the edge and the SIP stack must agree on which dialog a request
// is in), and its stripped form and its stateless answer are messages sipgo reads.
func FuzzScan(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if Scan(b, &m) != nil {
			return
		}
		msg, err := sip.ParseMessage(b)
		if err != nil {
			return // the edge reads more leniently than the stack; the stack drops it
		}
		// Where sipgo does not see a header the edge saw (it reads some header names
		// case-sensitively), it refuses the message itself: only a disagreement on a
		// value both read matters.
		if cid := msg.CallID(); cid != nil && cid.Value() != string(m.CallID(b)) {
			t.Fatalf("Call-ID: sipgo %v, edge %q", cid, m.CallID(b))
		}
		// A tag the edge reads, sipgo reads the same (sipgo also reads tags the edge does
		// not, such as one without its ';': the edge then takes the request for one
		// outside any dialog, which it refuses from untrusted sources).
		if from := msg.From(); from != nil && len(m.FromTag(b)) > 0 {
			if tag, _ := from.Params.Get("tag"); tag != string(m.FromTag(b)) {
				t.Fatalf("From tag: sipgo %q, edge %q", tag, m.FromTag(b))
			}
		}
		if to := msg.To(); to != nil && len(m.ToTag(b)) > 0 {
			if tag, _ := to.Params.Get("tag"); tag != string(m.ToTag(b)) {
				t.Fatalf("To tag: sipgo %q, edge %q", tag, m.ToTag(b))
			}
		}
		stripped := AppendStripped(nil, b, &m)
		var m2 Message
		if err := Scan(stripped, &m2); err != nil || m2.nstrip != 0 {
			t.Fatalf("stripped: %v, %d identity headers left", err, m2.nstrip)
		}
		if sm, err := sip.ParseMessage(stripped); err == nil {
			if len(sm.GetHeaders("P-Asserted-Identity")) > 0 || len(sm.GetHeaders("P-Asserted-Service")) > 0 {
				t.Fatalf("sipgo still reads an identity header in %q", stripped)
			}
		}
		if !m.Request {
			return
		}
		ans := AppendAnswer(nil, b, &m, 403, "Forbidden", "Retry-After: 1")
		var am Message
		if err := Scan(ans, &am); err != nil || am.Request || am.Status != 403 ||
			!bytes.Equal(am.CallID(ans), m.CallID(b)) || len(am.ToTag(ans)) == 0 {
			t.Fatalf("answer %q: %v, %+v", ans, err, am)
		}
		if msg.Via() == nil || msg.From() == nil || msg.To() == nil || msg.CSeq() == nil {
			return // the answer copies these as they came; sipgo may not read them back
		}
		res, err := sip.ParseMessage(ans)
		if err != nil {
			t.Fatalf("answer %q does not parse: %v", ans, err)
		}
		if r, ok := res.(*sip.Response); !ok || r.StatusCode != 403 {
			t.Fatalf("answer %q is not a 403", ans)
		}
	})
}
