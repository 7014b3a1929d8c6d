package asadapter

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestMalformedSIPFromTheNetwork throws broken datagrams at the UDP listener: the
// unparsable are dropped, and so are requests without what a response copies; the
// otherwise incomplete get 400, an unhandled method 405, and the adapter still answers a
// valid OPTIONS afterwards.
func TestMalformedSIPFromTheNetwork(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.adapter("gw1", nil)
	conn, err := net.Dial("udp", a.a.Addr("udp"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	req := func(method, extra string) string {
		return method + " sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + method + "1\r\n" +
			"From: <sip:t@127.0.0.1>;tag=1\r\nTo: <sip:x@127.0.0.1>\r\nCSeq: 1 " + method + "\r\nMax-Forwards: 70\r\n" +
			extra + "Content-Length: 0\r\n\r\n"
	}
	read := func() string {
		_ = conn.SetReadDeadline(time.Now().Add(waitFor))
		b := make([]byte, 4096)
		n, err := conn.Read(b)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		return string(b[:n])
	}
	for _, junk := range []string{
		"\x00\x01\x02garbage",
		"INVITE\r\n\r\n",
		"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
		"INVITE sip:x@y SIP/2.0\r\nContent-Length: 99999999\r\n\r\n",
		strings.Repeat("A", 1400),
	} {
		if _, err := conn.Write([]byte(junk)); err != nil {
			t.Fatal(err)
		}
	}
	// Parsable, but without a header every response copies (Call-ID, To): no complete
	// response could answer them, so none is sent (the edge drops them from outside the
	// trust domain just so). Once both are counted, nothing of theirs can follow.
	bad := counterValue(t, a.a.met.sipBad)
	noTo := strings.Replace(req("MESSAGE", "Call-ID: no-to\r\n"), "To: <sip:x@127.0.0.1>\r\n", "", 1)
	for _, m := range []string{req("INVITE", ""), noTo} {
		if _, err := conn.Write([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(waitFor); counterValue(t, a.a.met.sipBad) < bad+2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("requests without Call-ID or To not counted as rejected")
		}
	}
	// A CSeq of another method than the request's: answerable, and refused.
	if _, err := conn.Write([]byte(strings.Replace(req("INVITE", "Call-ID: cseq\r\n"), "CSeq: 1 INVITE", "CSeq: 1 BYE", 1))); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.HasPrefix(got, "SIP/2.0 400") {
		t.Fatalf("INVITE with a BYE CSeq answered %q", firstLine(got))
	}
	// A method nobody handles: 405 with what we allow (RFC 3261 section 21.4.6).
	if _, err := conn.Write([]byte(req("MESSAGE", "Call-ID: message\r\n"))); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.HasPrefix(got, "SIP/2.0 405") || !strings.Contains(got, "\r\nAllow: "+allowMethods+"\r\n") {
		t.Fatalf("MESSAGE answered %q", got)
	}
	// A BYE outside any dialog.
	if _, err := conn.Write([]byte(req("BYE", "Call-ID: nothing-here\r\n"))); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.HasPrefix(got, "SIP/2.0 481") {
		t.Fatalf("stray BYE answered %q", firstLine(got))
	}
	if _, err := conn.Write([]byte(req("OPTIONS", "Call-ID: ping\r\n"))); err != nil {
		t.Fatal(err)
	}
	if got := read(); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS after junk answered %q", firstLine(got))
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}
