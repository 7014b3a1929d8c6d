package edge

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var (
	cscf     = netip.MustParseAddrPort("10.0.0.5:5060")
	attacker = netip.MustParseAddrPort("192.0.2.10:5060")
)

// fakeDialogs is a Dialogs of one dialog ("dialog-call-1", our tag "local-tag", theirs
// "remote-tag", next hop next) and one INVITE being answered ("ringing-1", "caller-tag").
type fakeDialogs struct{ next netip.Addr }

func (d fakeDialogs) Dialog(callID, local, remote []byte) (netip.Addr, bool) {
	switch {
	case string(callID) == "dialog-call-1" && string(local) == "local-tag" && string(remote) == "remote-tag":
		return d.next, true
	case string(callID) == "ringing-1" && len(local) == 0 && string(remote) == "caller-tag":
		return d.next, true
	}
	return netip.Addr{}, false
}

// testEdge builds an edge trusting the CSCF's network, with cfg's other fields.
func testEdge(t testing.TB, cfg Config, log *slog.Logger) (*Edge, *prometheus.Registry) {
	t.Helper()
	if cfg.Trusted == nil {
		cfg.Trusted = []string{"10.0.0.0/24"}
	}
	reg := prometheus.NewRegistry()
	e, err := New(cfg, fakeDialogs{next: netip.MustParseAddr("198.51.100.7")}, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	return e, reg
}

// send passes one datagram through e and returns what passed and what was answered.
func send(e *Edge, src netip.AddrPort, b []byte) (pass, answer []byte) {
	pass = e.Datagram(src, b, func(a []byte) { answer = append([]byte(nil), a...) })
	return pass, answer
}

// status returns the status line of an answer ("" for none).
func status(a []byte) string {
	l, _, _ := bytes.Cut(a, []byte("\r\n"))
	return string(l)
}

// metricValue returns the value of a counter with one label in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestTrustedPassesUntouched(t *testing.T) {
	e, reg := testEdge(t, Config{}, nil)
	inv := readMsg(t, "invite.sip")
	pass, ans := send(e, cscf, inv)
	if !bytes.Equal(pass, inv) || ans != nil {
		t.Fatalf("trusted INVITE: pass %d bytes, answer %q", len(pass), ans)
	}
	if v := metricValue(t, reg, "asadapter_sip_edge_passed_total", "trusted"); v != 1 {
		t.Fatalf("passed trusted = %v", v)
	}
}

func TestUntrustedOutOfDialog(t *testing.T) {
	e, reg := testEdge(t, Config{}, nil)
	for _, name := range []string{"invite.sip", "register.sip", "options.sip"} {
		b := readMsg(t, name)
		pass, ans := send(e, attacker, b)
		if pass != nil || status(ans) != "SIP/2.0 403 Forbidden" {
			t.Fatalf("%s: pass %q, answer %q", name, pass, ans)
		}
		var m, req Message
		if err := Scan(ans, &m); err != nil || len(m.ToTag(ans)) == 0 {
			t.Fatalf("%s: answer %q: %v", name, ans, err)
		}
		_ = Scan(b, &req)
		if !bytes.Equal(m.CallID(ans), req.CallID(b)) || m.nvia != req.nvia {
			t.Fatalf("%s: answer %q does not match the request", name, ans)
		}
		// The ACK of that answer is absorbed without a word.
		ack := bytes.Replace(b[:req.HeaderEnd], req.MethodName(b), []byte("ACK"), 1)
		ack = bytes.Replace(ack, req.to.of(b), m.to.of(ans), 1)
		if pass, ans := send(e, attacker, ack); pass != nil || ans != nil {
			t.Fatalf("%s: ACK of our answer: pass %q answer %q", name, pass, ans)
		}
	}
	if v := metricValue(t, reg, "asadapter_sip_edge_refused_total", "untrusted"); v != 3 {
		t.Fatalf("refused untrusted = %v, want 3", v)
	}
}

func TestInDialog(t *testing.T) {
	e, reg := testEdge(t, Config{}, nil)
	bye := readMsg(t, "bye.sip")
	if pass, ans := send(e, attacker, bye); !bytes.Equal(pass, bye) || ans != nil {
		t.Fatalf("BYE of a dialog of ours: pass %q answer %q", pass, ans)
	}
	next := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), 5060)
	if pass, _ := send(e, next, bye); !bytes.Equal(pass, bye) {
		t.Fatal("BYE from the next hop refused")
	}
	if metricValue(t, reg, "asadapter_sip_edge_passed_total", "next_hop") != 1 ||
		metricValue(t, reg, "asadapter_sip_edge_passed_total", "dialog") != 1 {
		t.Fatal("passed counts by class are off")
	}
	other := bytes.Replace(bye, []byte("local-tag"), []byte("guessed"), 1)
	if pass, ans := send(e, attacker, other); pass != nil || !strings.HasPrefix(status(ans), "SIP/2.0 481") {
		t.Fatalf("BYE of no dialog: pass %q answer %q", pass, ans)
	}
	cancel := crlf("CANCEL sip:alice@gw SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKc\nFrom: <sip:b@x>;tag=caller-tag\nTo: <sip:alice@gw>\nCall-ID: ringing-1\nCSeq: 1 CANCEL\nContent-Length: 0\n\n")
	if pass, _ := send(e, attacker, cancel); pass == nil {
		t.Fatal("CANCEL of an INVITE being answered refused")
	}
	lost := bytes.Replace(cancel, []byte("ringing-1"), []byte("ringing-2"), 1)
	if _, ans := send(e, attacker, lost); !strings.HasPrefix(status(ans), "SIP/2.0 481") {
		t.Fatalf("CANCEL of nothing: %q", ans)
	}
}

func TestResponsesLoseIdentityHeaders(t *testing.T) {
	e, _ := testEdge(t, Config{}, nil)
	b := readMsg(t, "ringing.sip")
	pass, ans := send(e, attacker, b)
	if pass == nil || ans != nil || bytes.Contains(pass, []byte("P-Asserted-Identity")) {
		t.Fatalf("response: pass %q answer %q", pass, ans)
	}
	if pass, _ := send(e, cscf, b); !bytes.Contains(pass, []byte("P-Asserted-Identity")) {
		t.Fatal("the CSCF's response lost its asserted identity")
	}
	if v := counterOf(t, e.met.stripped); v != 1 {
		t.Fatalf("identity headers removed: %v, want 1", v)
	}
}

func TestRateLimits(t *testing.T) {
	e, reg := testEdge(t, Config{SourceRate: 5, SourceDropRate: 10}, nil)
	opt := readMsg(t, "options.sip")
	counts := map[string]int{}
	for range 100 {
		_, ans := send(e, attacker, opt)
		counts[status(ans)]++
	}
	// Bursts of twice the rates: 10 refused as untrusted, 10 more answered 503, the
	// rest dropped (a little refill while the loop runs is allowed).
	if n := counts["SIP/2.0 403 Forbidden"]; n < 10 || n > 11 {
		t.Fatalf("403s: %d (%v)", n, counts)
	}
	if n := counts["SIP/2.0 503 Service Unavailable"]; n < 9 || n > 12 {
		t.Fatalf("503s: %d (%v)", n, counts)
	}
	if counts[""] < 75 {
		t.Fatalf("dropped: %d (%v)", counts[""], counts)
	}
	_, ans := send(e, netip.MustParseAddrPort("192.0.2.11:5060"), opt)
	if status(ans) != "SIP/2.0 403 Forbidden" {
		t.Fatalf("another source is limited too: %q", ans)
	}
	for range 100 {
		if pass, _ := send(e, cscf, opt); pass == nil {
			t.Fatal("the trust domain is limited")
		}
	}
	if metricValue(t, reg, "asadapter_sip_edge_refused_total", "flood") < 75 {
		t.Fatal("drops not counted as flood")
	}
}

func TestRetryAfter(t *testing.T) {
	e, _ := testEdge(t, Config{SourceRate: 1, SourceDropRate: 10}, nil)
	opt := readMsg(t, "options.sip")
	var ans []byte
	for range 3 {
		_, ans = send(e, attacker, opt)
	}
	if status(ans) != "SIP/2.0 503 Service Unavailable" || !bytes.Contains(ans, []byte("\r\nRetry-After: 10\r\n")) {
		t.Fatalf("third request: %q", ans)
	}
}

func TestOverflowSources(t *testing.T) {
	e, _ := testEdge(t, Config{MaxSources: 2, SourceRate: 1, SourceDropRate: 1}, nil)
	opt := readMsg(t, "options.sip")
	answered := 0
	for i := range 50 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 5060)
		if _, ans := send(e, src, opt); ans != nil {
			answered++
		}
	}
	// Two sources of their own (2 answers each at most), 48 sharing one entry (2).
	if answered > 4 {
		t.Fatalf("%d answers to 50 spoofed sources", answered)
	}
	if n := len(e.src.m); n != 2 {
		t.Fatalf("%d sources tracked, want 2", n)
	}
}

func TestIPv6SourcesByPrefix(t *testing.T) {
	a := sourceKey(netip.MustParseAddr("2001:db8:1:2:aaaa::1"))
	b := sourceKey(netip.MustParseAddr("2001:db8:1:2:bbbb::2"))
	c := sourceKey(netip.MustParseAddr("2001:db8:1:3::1"))
	if a != b || a == c {
		t.Fatalf("keys %v %v %v", a, b, c)
	}
	if k := sourceKey(netip.MustParseAddr("::ffff:192.0.2.1")); k != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("mapped IPv4 keyed as %v", k)
	}
}

func TestBounds(t *testing.T) {
	e, reg := testEdge(t, Config{SourceTransactions: 2, SourceDialogs: 1, SourceConnections: 1}, nil)
	src := attacker.Addr()
	r1, ok1 := e.Enter(src)
	_, ok2 := e.Enter(src)
	_, ok3 := e.Enter(src)
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("transactions: %v %v %v", ok1, ok2, ok3)
	}
	r1()
	r1() // a second release changes nothing
	if _, ok := e.Enter(src); !ok {
		t.Fatal("released transaction still counted")
	}
	if _, ok := e.Enter(src); ok {
		t.Fatal("double release counted twice")
	}
	d, ok := e.OpenDialog(src)
	if _, ok2 := e.OpenDialog(src); !ok || ok2 {
		t.Fatal("dialog bound")
	}
	d()
	if _, ok := e.OpenConn(src); !ok {
		t.Fatal("first connection refused")
	}
	if _, ok := e.OpenConn(src); ok {
		t.Fatal("connection bound")
	}
	for _, r := range []string{"too_many_transactions", "too_many_dialogs", "too_many_connections"} {
		if metricValue(t, reg, "asadapter_sip_edge_refused_total", r) == 0 {
			t.Errorf("%s not counted", r)
		}
	}
}

func TestStream(t *testing.T) {
	e, _ := testEdge(t, Config{}, nil)
	s := e.NewStream(attacker.Addr())
	inv, bye := readMsg(t, "invite.sip"), readMsg(t, "bye.sip")
	data := append(append([]byte(nil), inv...), bye...)
	var answers []string
	var passed []byte
	for i := 0; i < len(data); i += 37 {
		out, err := s.Feed(data[i:min(i+37, len(data))], func(a []byte) { answers = append(answers, status(a)) })
		if err != nil {
			t.Fatal(err)
		}
		passed = append(passed, out...)
	}
	if !bytes.Equal(passed, bye) || len(answers) != 1 || answers[0] != "SIP/2.0 403 Forbidden" {
		t.Fatalf("passed %q, answers %v", passed, answers)
	}
	if _, err := s.Feed([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), nil); err == nil {
		t.Fatal("a stream of something else is not refused")
	}
}

// logRecords is a slog handler that keeps records.
type logRecords struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r)
	l.mu.Unlock()
	return nil
}
func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecords) WithGroup(string) slog.Handler      { return l }

func TestSummaryInsteadOfLines(t *testing.T) {
	logs := &logRecords{}
	e, _ := testEdge(t, Config{}, slog.New(logs))
	inv := readMsg(t, "invite.sip")
	for range 1000 {
		send(e, attacker, inv)
	}
	e.Refused(ReasonUnknownUser, cscf.Addr())
	if len(logs.recs) != 0 {
		t.Fatalf("%d log lines during the flood", len(logs.recs))
	}
	e.summarize()
	e.summarize() // nothing new: no line
	if len(logs.recs) != 1 {
		t.Fatalf("%d summary lines, want 1", len(logs.recs))
	}
	attrs := map[string]string{}
	logs.recs[0].Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	if attrs["total"] != "1001" || attrs["unknown_user"] != "1" || !strings.HasPrefix(attrs["top_sources"], "192.0.2.10=1000") {
		t.Fatalf("summary %v", attrs)
	}
}

func TestTrustDomain(t *testing.T) {
	tr, err := newTrust([]string{"10.1.0.0/16", "192.0.2.1", "[2001:db8::5]:5061", "localhost:5060", " "}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.refresh(context.Background(), slog.New(slog.DiscardHandler))
	for a, want := range map[string]bool{
		"10.1.200.3": true, "10.2.0.1": false, "192.0.2.1": true, "192.0.2.2": false,
		"2001:db8::5": true, "::ffff:192.0.2.1": true, "127.0.0.1": true, "203.0.113.1": false,
	} {
		if got := tr.contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("%s trusted %v, want %v", a, got, want)
		}
	}
	if _, err := newTrust([]string{"not a host/"}, nil); err == nil {
		t.Fatal("a bad entry is accepted")
	}
}

func TestDirectPeerChallenge(t *testing.T) {
	e, reg := testEdge(t, Config{Realm: "gw.test", Peers: []Credential{{User: "pbx", Password: "pw"}}}, nil)
	inv := readMsg(t, "invite.sip")
	_, ans := send(e, attacker, inv)
	if status(ans) != "SIP/2.0 401 Unauthorized" {
		t.Fatalf("first INVITE: %q", ans)
	}
	_, chalLine, _ := bytes.Cut(ans, []byte("WWW-Authenticate: "))
	chalLine, _, _ = bytes.Cut(chalLine, []byte("\r\n"))
	chal, err := digest.ParseChallenge(string(chalLine))
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	_ = Scan(inv, &m)
	answer := func(user, pw string) []byte {
		cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: string(m.URI(inv)), Username: user, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		return bytes.Replace(inv, []byte("Contact:"), []byte("Authorization: "+cred.String()+"\r\nContact:"), 1)
	}
	pass, ans := send(e, attacker, answer("pbx", "pw"))
	if pass == nil || ans != nil {
		t.Fatalf("answered challenge: pass %v answer %q", pass != nil, ans)
	}
	if bytes.Contains(pass, []byte("P-Asserted")) {
		t.Fatal("an authenticated direct peer keeps its asserted identity")
	}
	if _, ans := send(e, attacker, answer("pbx", "wrong")); status(ans) != "SIP/2.0 403 Forbidden" {
		t.Fatalf("wrong password: %q", ans)
	}
	other := netip.MustParseAddrPort("192.0.2.99:5060")
	if _, ans := send(e, other, answer("pbx", "pw")); status(ans) != "SIP/2.0 403 Forbidden" {
		t.Fatalf("a nonce replayed from another address: %q", ans)
	}
	for r, want := range map[string]float64{"challenged": 1, "bad_credentials": 2} {
		if v := metricValue(t, reg, "asadapter_sip_edge_refused_total", r); v != want {
			t.Errorf("%s = %v, want %v", r, v, want)
		}
	}
}

func TestNonceAge(t *testing.T) {
	p, err := newPeerAuth("r", []Credential{{User: "u", HA1: "00"}})
	if err != nil {
		t.Fatal(err)
	}
	src := attacker.Addr()
	n := p.nonce(src, timeAt(0))
	for at, want := range map[int64][2]bool{0: {true, true}, 299: {true, true}, 301: {true, false}, -120: {true, false}} {
		ours, fresh := p.nonceState(n, src, timeAt(at))
		if [2]bool{ours, fresh} != want {
			t.Errorf("at %d s: ours %v fresh %v, want %v", at, ours, fresh, want)
		}
	}
	if ours, _ := p.nonceState(n+"0", src, timeAt(0)); ours {
		t.Error("a changed nonce is taken for ours")
	}
}

func TestConfigChecks(t *testing.T) {
	if _, err := New(Config{SourceRate: 50, SourceDropRate: 10}, nil, nil, nil); err == nil {
		t.Fatal("a drop rate below the rate is accepted")
	}
	if _, err := New(Config{Peers: []Credential{{User: "a", Password: "b"}}}, nil, nil, nil); err == nil {
		t.Fatal("peers without a realm are accepted")
	}
	if _, err := ParseCredentials([]string{"nopassword"}); err == nil {
		t.Fatal("a credential without a password is accepted")
	}
	c, err := ParseCredentials([]string{"a:b:c", ""})
	if err != nil || len(c) != 1 || c[0].Password != "b:c" {
		t.Fatalf("%+v %v", c, err)
	}
}

// counterOf reads a counter (for tests of other files).
func counterOf(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// timeAt is a fixed instant plus sec seconds.
func timeAt(sec int64) time.Time { return time.Unix(1_700_000_000+sec, 0) }

// FuzzDatagram: no datagram from an untrusted source panics the edge; what passes is a
// message Scan accepts without identity headers, and every answer is one response.
func FuzzDatagram(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	e, err := New(Config{Realm: "r", Peers: []Credential{{User: "u", Password: "p"}}, SourceRate: 1e9, SourceDropRate: 1e9},
		fakeDialogs{next: attacker.Addr()}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		answers := 0
		pass := e.Datagram(attacker, b, func(a []byte) {
			answers++
			var m Message
			if err := Scan(a, &m); err != nil || m.Request {
				t.Fatalf("answer %q: %v", a, err)
			}
		})
		if answers > 1 || (pass != nil && answers > 0) {
			t.Fatalf("%d answers, passed %v", answers, pass != nil)
		}
		if pass == nil {
			return
		}
		var m Message
		if err := Scan(pass, &m); err != nil || m.nstrip != 0 {
			t.Fatalf("passed %q: %v, %d identity headers", pass, err, m.nstrip)
		}
	})
}
