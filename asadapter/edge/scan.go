package edge

import (
	"bytes"
	"fmt"
)

// The scanner reads just enough of a SIP message to decide at the edge: the start line,
// the headers that identify a transaction and a dialog (Via, From and To tags, Call-ID,
// CSeq), Content-Length for framing a stream, the identity headers the edge removes, and
// Authorization for a direct peer. It keeps offsets into the caller's bytes and
// allocates nothing, so a refused message costs one pass over its header section.

// MaxMessage is the largest message the edge passes: sipgo's own limit, so that a stream
// the edge frames is framed as sipgo frames it.
const MaxMessage = 65535

// maxVias bounds the Via lines copied into a stateless answer (a request through a long
// chain of proxies has a handful; 16 is RFC 3261's implicit Max-Forwards-scale bound with
// room to spare). maxStrip bounds the identity headers removed from one message.
const (
	maxVias  = 16
	maxStrip = 8
)

// span is the byte range [start, end) of a scanned message.
type span struct{ start, end int }

func (s span) of(b []byte) []byte { return b[s.start:s.end] }

// Method is a request's method, as far as the edge tells methods apart.
type Method uint8

// The methods the edge tells apart; anything else is MethodOther.
const (
	MethodOther Method = iota
	MethodInvite
	MethodAck
	MethodBye
	MethodCancel
	MethodRegister
	MethodOptions
	MethodSubscribe
	MethodNotify
	MethodInfo
	MethodUpdate
	MethodRefer
	MethodMessage
	MethodPrack
	MethodPublish
)

func methodOf(b []byte) Method {
	switch string(b) {
	case "INVITE":
		return MethodInvite
	case "ACK":
		return MethodAck
	case "BYE":
		return MethodBye
	case "CANCEL":
		return MethodCancel
	case "REGISTER":
		return MethodRegister
	case "OPTIONS":
		return MethodOptions
	case "SUBSCRIBE":
		return MethodSubscribe
	case "NOTIFY":
		return MethodNotify
	case "INFO":
		return MethodInfo
	case "UPDATE":
		return MethodUpdate
	case "REFER":
		return MethodRefer
	case "MESSAGE":
		return MethodMessage
	case "PRACK":
		return MethodPrack
	case "PUBLISH":
		return MethodPublish
	}
	return MethodOther
}

// Message is what Scan found in a message: offsets into the scanned bytes, valid as long
// as those bytes are.
type Message struct {
	Request bool
	Method  Method // requests only
	Status  int    // responses only
	// ContentLength is the Content-Length header's value, -1 without one.
	ContentLength int
	// HeaderEnd is the offset of the body (just after the empty line).
	HeaderEnd int

	method, uri                span
	callID, fromTag, toTag     span // values
	from, to, callIDLine, cseq span // whole lines, line ends included
	vias                       [maxVias]span
	nvia                       int
	strip                      [maxStrip]span // P-Asserted-Identity and P-Asserted-Service lines
	nstrip                     int
	auth                       span // Authorization value
	hasFrom, hasTo, hasCallID  bool
	hasCSeq, hasContentLength  bool
	authorized                 bool
}

// Scan reads the start line and header section of b into m. Without an error, m names a
// request or a response with Via, From, To, Call-ID and CSeq, each once (Via at least
// once). It does not look at the body beyond checking that Content-Length fits in b.
func Scan(b []byte, m *Message) error { return scan(b, m, true) }

// scan is Scan; with body false, b may end after the header section (a stream's framer
// learns Content-Length before the body has arrived).
func scan(b []byte, m *Message, body bool) error {
	*m = Message{ContentLength: -1}
	if len(b) > MaxMessage {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	line, next, err := nextLine(b, 0)
	if err != nil {
		return err
	}
	if err := m.startLine(b, line); err != nil {
		return err
	}
	for {
		line, n, err := nextLine(b, next)
		if err != nil {
			return err
		}
		if line.end == line.start { // the empty line
			m.HeaderEnd = n
			break
		}
		// A header continues on lines that start with white space (RFC 3261 section 7.3.1).
		whole := span{next, n}
		for n < len(b) && (b[n] == ' ' || b[n] == '\t') {
			l, nn, err := nextLine(b, n)
			if err != nil {
				return err
			}
			line.end, whole.end, n = l.end, nn, nn
		}
		if err := m.header(b, line, whole); err != nil {
			return err
		}
		next = n
	}
	switch {
	case m.nvia == 0:
		return fmt.Errorf("%w: no Via", ErrBadHeader)
	case !m.hasFrom || !m.hasTo || !m.hasCallID || !m.hasCSeq:
		return fmt.Errorf("%w: From, To, Call-ID or CSeq missing", ErrBadHeader)
	case m.callID.end == m.callID.start:
		return fmt.Errorf("%w: empty Call-ID", ErrBadHeader)
	}
	if body && m.ContentLength > len(b)-m.HeaderEnd {
		return ErrIncomplete
	}
	return nil
}

// nextLine returns the line starting at i without its CRLF, and the offset after it.
// ErrIncomplete when no line end follows; ErrBadHeader for a bare CR or LF, which SIP
// does not allow (RFC 3261 section 7) and which sipgo reads otherwise than a line end:
// the edge refuses what the SIP stack could read differently.
func nextLine(b []byte, i int) (line span, next int, err error) {
	if i > len(b) {
		return span{}, 0, ErrIncomplete
	}
	j := bytes.IndexByte(b[i:], '\n')
	if j < 0 {
		return span{}, 0, ErrIncomplete
	}
	end := i + j
	if end == i || b[end-1] != '\r' {
		return span{}, 0, fmt.Errorf("%w: bare LF", ErrBadHeader)
	}
	if bytes.IndexByte(b[i:end-1], '\r') >= 0 {
		return span{}, 0, fmt.Errorf("%w: bare CR", ErrBadHeader)
	}
	return span{i, end - 1}, end + 1, nil
}

// startLine reads "METHOD uri SIP/2.0" or "SIP/2.0 code reason".
func (m *Message) startLine(b []byte, l span) error {
	s := l.of(b)
	if rest, ok := bytes.CutPrefix(s, []byte("SIP/2.0 ")); ok {
		if len(rest) < 3 || (len(rest) > 3 && rest[3] != ' ') {
			return fmt.Errorf("%w: status line", ErrNotSIP)
		}
		code := 0
		for _, c := range rest[:3] {
			if c < '0' || c > '9' {
				return fmt.Errorf("%w: status code", ErrNotSIP)
			}
			code = code*10 + int(c-'0')
		}
		if code < 100 || code > 699 {
			return fmt.Errorf("%w: status code %d", ErrNotSIP, code)
		}
		m.Status = code
		return nil
	}
	sp1 := bytes.IndexByte(s, ' ')
	if sp1 <= 0 {
		return fmt.Errorf("%w: request line", ErrNotSIP)
	}
	sp2 := bytes.IndexByte(s[sp1+1:], ' ')
	if sp2 <= 0 || !bytes.Equal(s[sp1+1+sp2+1:], []byte("SIP/2.0")) {
		return fmt.Errorf("%w: request line", ErrNotSIP)
	}
	for _, c := range s[:sp1] {
		if !isToken(c) {
			return fmt.Errorf("%w: method", ErrNotSIP)
		}
	}
	m.Request = true
	m.method = span{l.start, l.start + sp1}
	m.uri = span{l.start + sp1 + 1, l.start + sp1 + 1 + sp2}
	m.Method = methodOf(m.method.of(b))
	return nil
}

// isToken reports whether c may appear in a method name (RFC 3261 section 25.1 token).
func isToken(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return bytes.IndexByte([]byte("-.!%*_+`'~"), c) >= 0
}

// header records one header: line is its logical line without the final line end,
// whole the bytes it takes in the message.
func (m *Message) header(b []byte, line, whole span) error {
	s := line.of(b)
	colon := bytes.IndexByte(s, ':')
	if colon <= 0 {
		return fmt.Errorf("%w: header line without a name", ErrBadHeader)
	}
	name := bytes.TrimRight(s[:colon], " \t")
	v := span{line.start + colon + 1, line.end}
	for v.start < v.end && (b[v.start] == ' ' || b[v.start] == '\t') {
		v.start++
	}
	for v.end > v.start && (b[v.end-1] == ' ' || b[v.end-1] == '\t') {
		v.end--
	}
	switch {
	case is(name, "via", "v"):
		if m.nvia == maxVias {
			return fmt.Errorf("%w: more than %d Via lines", ErrTooLarge, maxVias)
		}
		m.vias[m.nvia] = whole
		m.nvia++
	case is(name, "from", "f"):
		if m.hasFrom {
			return fmt.Errorf("%w: two From", ErrBadHeader)
		}
		m.hasFrom, m.from, m.fromTag = true, whole, tagOf(b, v)
		if m.fromTag.start < 0 {
			return fmt.Errorf("%w: From tag", ErrBadHeader)
		}
	case is(name, "to", "t"):
		if m.hasTo {
			return fmt.Errorf("%w: two To", ErrBadHeader)
		}
		m.hasTo, m.to, m.toTag = true, whole, tagOf(b, v)
		if m.toTag.start < 0 {
			return fmt.Errorf("%w: To tag", ErrBadHeader)
		}
	case is(name, "call-id", "i"):
		if m.hasCallID {
			return fmt.Errorf("%w: two Call-ID", ErrBadHeader)
		}
		m.hasCallID, m.callIDLine, m.callID = true, whole, v
	case is(name, "cseq", ""):
		if m.hasCSeq {
			return fmt.Errorf("%w: two CSeq", ErrBadHeader)
		}
		m.hasCSeq, m.cseq = true, whole
	case is(name, "content-length", "l"):
		n, ok := atoi(v.of(b))
		if !ok || (m.hasContentLength && n != m.ContentLength) {
			return fmt.Errorf("%w: Content-Length", ErrBadHeader)
		}
		m.hasContentLength, m.ContentLength = true, n
	case is(name, "p-asserted-identity", ""), is(name, "p-asserted-service", ""):
		if m.nstrip == maxStrip {
			return fmt.Errorf("%w: more than %d identity headers", ErrTooLarge, maxStrip)
		}
		m.strip[m.nstrip] = whole
		m.nstrip++
	case is(name, "authorization", ""):
		m.auth, m.authorized = v, true
	}
	return nil
}

// is reports whether name is long or short (a compact form), in any case. The scanner
// reads every header of every message a flood brings: lengths are compared first, then
// ASCII letters without Unicode case folding (header names are tokens).
func is(name []byte, long, short string) bool {
	return (len(name) == len(long) && asciiEqualFold(name, long)) ||
		(short != "" && len(name) == len(short) && asciiEqualFold(name, short))
}

// asciiEqualFold reports whether b equals the lower-case s, ignoring the case of ASCII
// letters in b.
func asciiEqualFold(b []byte, s string) bool {
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// atoi parses a Content-Length: decimal digits, at most MaxMessage.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 6 {
		return 0, false
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= MaxMessage
}

// tagOf returns the tag parameter of a From or To value: among the parameters after the
// URI (after the '>' of a name-addr, or after the addr-spec), not inside a quoted
// display name or the URI's own parameters. It reads ";tag=" exactly as written (sipgo
// matches parameter names case-sensitively, and the edge must not see a tag, and so a
// dialog, where the SIP stack sees none). A tag parameter without a value, or
// with a value that is not a token, returns span{-1, -1}: neither present nor absent,
// refused.
func tagOf(b []byte, v span) span {
	s := v.of(b)
	params := 0
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case c == '\\' && quoted:
			i++
		case c == '<' && !quoted:
			j := bytes.IndexByte(s[i:], '>')
			if j < 0 {
				return span{-1, -1} // an unclosed name-addr
			}
			params = i + j + 1
			i = len(s)
		}
	}
	if quoted {
		return span{-1, -1} // an unclosed display name
	}
	if params == 0 { // an addr-spec: its parameters are the header's
		if j := bytes.IndexByte(s, ';'); j >= 0 {
			params = j
		} else {
			return span{}
		}
	}
	rest := s[params:]
	for {
		j := bytes.Index(rest, []byte(";tag="))
		if j < 0 {
			return span{}
		}
		q := rest[j+len(";tag="):]
		end := 0
		for end < len(q) && isToken(q[end]) {
			end++
		}
		if end == 0 || (end < len(q) && q[end] != ';') {
			return span{-1, -1} // a tag is a token (RFC 3261 section 25.1), nothing else
		}
		start := v.start + len(s) - len(q)
		return span{start, start + end}
	}
}

// CallID, FromTag and ToTag return the message's values (sub-slices of the scanned
// bytes; empty when absent).
func (m *Message) CallID(b []byte) []byte  { return m.callID.of(b) }
func (m *Message) FromTag(b []byte) []byte { return m.fromTag.of(b) }
func (m *Message) ToTag(b []byte) []byte   { return m.toTag.of(b) }

// URI returns a request's Request-URI.
func (m *Message) URI(b []byte) []byte { return m.uri.of(b) }

// MethodName returns a request's method as written.
func (m *Message) MethodName(b []byte) []byte { return m.method.of(b) }

// IdentityHeaders reports how many P-Asserted-Identity and P-Asserted-Service lines the
// message carries.
func (m *Message) IdentityHeaders() int { return m.nstrip }

// Authorization returns the Authorization header's value, false without one.
func (m *Message) Authorization(b []byte) ([]byte, bool) { return m.auth.of(b), m.authorized }
