package edge

import (
	"bytes"
	"context"
	"crypto/x509"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Dialogs is what the edge asks call control about a request that claims to belong to a
// dialog of ours.
type Dialogs interface {
	// Dialog reports whether Call-ID callID with our tag localTag (a request's To tag)
	// and the peer's tag remoteTag names a dialog or subscription of ours; with localTag
	// empty, whether an INVITE of the peer with that Call-ID and From tag is being
	// answered (what a CANCEL matches). next is the address the dialog's requests come
	// from (its next hop), invalid when unknown.
	Dialog(callID, localTag, remoteTag []byte) (next netip.Addr, ok bool)
}

// retryAfter is the Retry-After of a 503 to a source over its rate: ten seconds, several
// times what its bucket takes to refill, so a client that honours it backs off for real.
const retryAfter = "Retry-After: 10"

// Edge decides, for every message the SIP listeners read, whether it reaches the SIP
// stack. It is safe for concurrent use.
type Edge struct {
	cfg     Config
	trust   *trust
	auth    *peerAuth // nil without direct peers
	dialogs Dialogs
	src     *table
	log     *slog.Logger
	met     *metrics
	epoch   time.Time
	period  [numReasons]atomic.Uint64 // refusals since the last summary
	total   [numReasons]atomic.Uint64 // refusals since New (Refusals)
	bufs    sync.Pool                 // *[]byte for answers
}

// New builds an edge. dialogs may be nil (no request matches a dialog); a nil reg keeps
// the metrics private; a nil log discards.
func New(cfg Config, dialogs Dialogs, reg prometheus.Registerer, log *slog.Logger) (*Edge, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	t, err := newTrust(cfg.Trusted, cfg.TrustedNames)
	if err != nil {
		return nil, err
	}
	auth, err := newPeerAuth(cfg.Realm, cfg.Peers)
	if err != nil {
		return nil, err
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	e := &Edge{cfg: cfg, trust: t, auth: auth, dialogs: dialogs, src: newTable(cfg.MaxSources),
		log: log.With("component", "sipedge"), met: met, epoch: time.Now()}
	e.bufs.New = func() any { b := make([]byte, 0, 1024); return &b }
	return e, nil
}

// clock is the edge's monotonic clock, in nanoseconds since New (never 0 after New).
func (e *Edge) clock() int64 { return int64(time.Since(e.epoch)) + 1 }

// TrustedAddr reports whether a is in the trust domain.
func (e *Edge) TrustedAddr(a netip.Addr) bool { return e.trust.contains(a) }

// TrustByCertificate reports whether TLS connections are trusted by their certificate
// (TrustedNames set) rather than by their address.
func (e *Edge) TrustByCertificate() bool { return len(e.trust.names) > 0 }

// TrustedCert reports whether a verified TLS peer certificate names a trusted peer.
func (e *Edge) TrustedCert(c *x509.Certificate) bool { return c != nil && e.trust.trustedCert(c) }

// Datagram decides on one datagram from src: it returns the bytes to hand to the SIP
// stack (b itself, or a copy without identity headers), or nil to drop it, after sending
// a stateless answer through reply when the edge answers it.
func (e *Edge) Datagram(src netip.AddrPort, b []byte, reply func([]byte)) []byte {
	a := src.Addr().Unmap()
	if e.trust.contains(a) {
		e.met.passed[passTrusted].Inc()
		return b
	}
	// Every message pays first: a source past its drop rate costs a look-up, not a scan.
	now := e.clock()
	if !e.src.charge(a, now, e.cfg.SourceDropRate) {
		e.count(ReasonFlood)
		return nil
	}
	var m Message
	if err := Scan(b, &m); err != nil {
		e.refuse(ReasonMalformed, a, now)
		return nil
	}
	if !e.decide(a, b, &m, now, reply) {
		return nil
	}
	if m.nstrip == 0 {
		return b
	}
	e.met.stripped.Add(float64(m.nstrip))
	return AppendStripped(make([]byte, 0, len(b)), b, &m)
}

// Stream is the edge of one untrusted stream connection (TCP, TLS): it frames what the
// connection delivers and decides on every message. Use one per connection, from the
// connection's reader.
type Stream struct {
	e   *Edge
	src netip.Addr
	f   Framer
	out []byte // what the last Feed let through (the SIP stack copies it before the next read)
}

// NewStream returns the edge of a connection from src, which is not trusted.
func (e *Edge) NewStream(src netip.Addr) *Stream { return &Stream{e: e, src: src.Unmap()} }

// Feed decides on the messages data completes: it returns the bytes to hand to the SIP
// stack (whole messages, possibly none), after answering refused ones through reply. An
// error means the stream cannot be framed: close the connection.
func (s *Stream) Feed(data []byte, reply func([]byte)) ([]byte, error) {
	s.out = s.out[:0]
	err := s.f.Feed(data, func(msg []byte, m *Message) {
		now := s.e.clock()
		if !s.e.src.charge(s.src, now, s.e.cfg.SourceDropRate) {
			s.e.count(ReasonFlood)
			return
		}
		if !s.e.decide(s.src, msg, m, now, reply) {
			return
		}
		s.e.met.stripped.Add(float64(m.nstrip))
		s.out = AppendStripped(s.out, msg, m)
	})
	if err != nil {
		s.e.refuse(ReasonMalformed, s.src, s.e.clock())
		return nil, err
	}
	if cap(s.out) > 4*MaxMessage {
		defer func() { s.out = nil }() // a burst's buffer is not kept for the connection's life
	}
	return s.out, nil
}

// decide is the edge's rule for a message m (scanned from b) from an untrusted source,
// which has paid its answer bucket: true lets it through; otherwise it was answered
// through reply or dropped.
func (e *Edge) decide(src netip.Addr, b []byte, m *Message, now int64, reply func([]byte)) bool {
	if !m.Request {
		// A response: sipgo matches it to a transaction of ours or drops it; never
		// answered.
		e.met.passed[passResponse].Inc()
		return true
	}
	to, from := m.ToTag(b), m.FromTag(b)
	inDialog := len(to) > 0
	if m.Method == MethodAck && inDialog && e.ackOfAnswer(b, m) {
		return false // the ACK of a stateless answer of ours: nothing waits for it
	}
	var known bool
	if inDialog || m.Method == MethodCancel {
		var next netip.Addr
		next, known = e.dialog(m.CallID(b), to, from)
		if known && next.IsValid() && next.Unmap() == src {
			e.met.passed[passNextHop].Inc()
			return true
		}
	}
	if !e.src.admit(src, now, e.cfg.SourceRate) {
		if m.Method != MethodAck {
			e.answer(reply, b, m, 503, "Service Unavailable", retryAfter)
		}
		e.refuse(ReasonRateLimited, src, now)
		return false
	}
	switch {
	case m.Method == MethodAck:
		e.met.passed[passAck].Inc()
		return true
	case inDialog || m.Method == MethodCancel:
		if known {
			e.met.passed[passDialog].Inc()
			return true
		}
		e.answer(reply, b, m, 481, "Call/Transaction Does Not Exist")
		e.refuse(ReasonNoDialog, src, now)
		return false
	case e.auth == nil:
		e.answer(reply, b, m, 403, "Forbidden")
		e.refuse(ReasonUntrusted, src, now)
		return false
	}
	res := authMissing
	if v, ok := m.Authorization(b); ok {
		res = e.auth.verify(v, m.MethodName(b), src, time.Now())
	}
	switch res {
	case authOK:
		e.met.passed[passAuthenticated].Inc()
		return true
	case authBad:
		e.answer(reply, b, m, 403, "Forbidden")
		e.refuse(ReasonBadCredentials, src, now)
	default:
		e.answer(reply, b, m, 401, "Unauthorized", e.auth.challenge(src, time.Now(), res == authStale))
		e.refuse(ReasonChallenged, src, now)
	}
	return false
}

// dialog asks call control, when it was given.
func (e *Edge) dialog(callID, local, remote []byte) (netip.Addr, bool) {
	if e.dialogs == nil {
		return netip.Addr{}, false
	}
	return e.dialogs.Dialog(callID, local, remote)
}

// ackOfAnswer reports whether an ACK carries the To tag of a stateless answer of ours to
// its INVITE (same Call-ID, From tag and top Via, RFC 3261 section 17.1.1.3).
func (e *Edge) ackOfAnswer(b []byte, m *Message) bool {
	var buf [20]byte
	return bytes.Equal(m.ToTag(b), appendTag(buf[:0], b, m))
}

// answer builds a stateless answer in a pooled buffer and hands it to reply.
func (e *Edge) answer(reply func([]byte), b []byte, m *Message, code int, reason string, extra ...string) {
	if reply == nil {
		return
	}
	p := e.bufs.Get().(*[]byte)
	*p = AppendAnswer((*p)[:0], b, m, code, reason, extra...)
	reply(*p)
	if cap(*p) <= 4096 { // an answer to a request with huge Via lines is not kept
		e.bufs.Put(p)
	}
}

// refuse counts a refusal of src's message.
func (e *Edge) refuse(r Reason, src netip.Addr, now int64) {
	e.count(r)
	if src.IsValid() && !e.trust.contains(src) {
		e.src.refused(src, now)
	}
}

// count counts a refusal for r in the metrics and the summary (the source's count is
// the caller's).
func (e *Edge) count(r Reason) {
	e.met.refused[r].Inc()
	e.period[r].Add(1)
	e.total[r].Add(1)
}

// Refusals returns how many messages were refused for r since New (what the metric
// counts, for the tools and tests that hold the edge rather than a registry).
func (e *Edge) Refusals(r Reason) uint64 { return e.total[r].Load() }

// Refused counts a refusal decided by call control (unknown user, foreign domain ...),
// so that it shows in the metrics and the summary beside the edge's own.
func (e *Edge) Refused(r Reason, src netip.Addr) { e.refuse(r, src.Unmap(), e.clock()) }

// Enter counts a request of untrusted src being handled; false (and counted as
// ReasonTransactions) when src has SourceTransactions in progress. Call release once
// the request is answered.
func (e *Edge) Enter(src netip.Addr) (release func(), ok bool) {
	return e.acquire(src, countTxs, e.cfg.SourceTransactions, ReasonTransactions)
}

// OpenDialog counts a call of untrusted src; false (counted as ReasonDialogs) when src
// has SourceDialogs. Call release once the call has ended.
func (e *Edge) OpenDialog(src netip.Addr) (release func(), ok bool) {
	return e.acquire(src, countDialogs, e.cfg.SourceDialogs, ReasonDialogs)
}

// OpenConn counts a stream connection of untrusted src; false (counted as
// ReasonConnections) when src has SourceConnections open. Call release once it closes.
func (e *Edge) OpenConn(src netip.Addr) (release func(), ok bool) {
	return e.acquire(src, countConns, e.cfg.SourceConnections, ReasonConnections)
}

func (e *Edge) acquire(src netip.Addr, c counter, max int, r Reason) (func(), bool) {
	src = src.Unmap()
	now := e.clock()
	release, ok := e.src.acquire(src, c, max, now)
	if !ok {
		e.refuse(r, src, now)
	}
	return release, ok
}

// Refresh resolves the host names of the trust domain now (Run does it every minute).
func (e *Edge) Refresh(ctx context.Context) { e.trust.refresh(ctx, e.log) }

// Run resolves the trust domain's names again every minute, forgets idle sources and
// logs the summary of refusals, until ctx ends.
func (e *Edge) Run(ctx context.Context) error {
	summary := time.NewTicker(e.cfg.Summary)
	defer summary.Stop()
	refresh := time.NewTicker(trustRefresh)
	defer refresh.Stop()
	for {
		select {
		case <-ctx.Done():
			e.summarize()
			return nil
		case <-refresh.C:
			e.trust.refresh(ctx, e.log)
		case <-summary.C:
			e.summarize()
			e.met.sources.Set(float64(e.src.sweep(e.clock(), idleSource)))
		}
	}
}

// summarize logs the refusals since the last summary as one line: counts per reason and
// the five sources refused most. Nothing when there were none.
func (e *Edge) summarize() {
	var attrs []any
	var total uint64
	for r := range numReasons {
		if n := e.period[r].Swap(0); n > 0 {
			attrs = append(attrs, r.String(), n)
			total += n
		}
	}
	top := e.src.top(5)
	if total == 0 {
		return
	}
	parts := make([]string, len(top))
	for i, s := range top {
		parts[i] = s.source + "=" + strconv.FormatUint(s.n, 10)
	}
	attrs = append(attrs, "total", total, "top_sources", strings.Join(parts, " "), "period", e.cfg.Summary)
	e.log.Info("SIP requests refused", attrs...)
}
