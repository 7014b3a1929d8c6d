package otbridge

import (
	"unicode/utf8"

	"dsmgw/store"
)

// parseFast decodes the frames browsers and load generators actually send: one object of
// known keys, each at most once, whose strings hold no escape and only valid UTF-8 and
// whose numbers are plain non-negative integers. For those it returns exactly what
// json.Unmarshal into Msg returns (FuzzParseFast checks it) at a fraction of the cost: a
// frame of this shape costs two allocations (the frame's text, which every string of the
// message shares, and the op's elements), where encoding/json took about fifteen and a
// reflective walk. Anything else (escapes, null, unknown or repeated keys, other number
// syntax, a malformed frame) returns ok false and takes the encoding/json path, which
// also writes the error messages.
func parseFast(b []byte) (m Msg, ok bool) {
	// One conversion: every string of the message is a substring of the frame's text.
	p := fastParser{s: string(b)}
	p.ws()
	if !p.eat('{') {
		return Msg{}, false
	}
	var seen uint16
	p.ws()
	if p.eat('}') {
		return m, p.end()
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return Msg{}, false
		}
		p.ws()
		if !p.eat(':') {
			return Msg{}, false
		}
		p.ws()
		bit, ok := p.member(&m, key)
		if !ok || seen&bit != 0 {
			return Msg{}, false
		}
		seen |= bit
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return m, p.end()
		}
		return Msg{}, false
	}
}

// fastParser walks one frame's text.
type fastParser struct {
	s string
	i int
}

// member decodes the value of key into m and returns the key's bit (for duplicates).
func (p *fastParser) member(m *Msg, key string) (uint16, bool) {
	switch key {
	case "t":
		s, ok := p.str()
		m.T = internType(s)
		return 1 << 0, ok
	case "id":
		s, ok := p.str()
		m.ID = s
		return 1 << 1, ok
	case "token":
		s, ok := p.str()
		m.Token = s
		return 1 << 2, ok
	case "obj":
		s, ok := p.str()
		m.Obj = s
		return 1 << 3, ok
	case "epoch":
		s, ok := p.str()
		m.Epoch = s
		return 1 << 4, ok
	case "seq":
		n, ok := p.uint()
		m.Seq = n
		return 1 << 5, ok
	case "since":
		n, ok := p.uint()
		m.Since = &n
		return 1 << 6, ok
	case "base":
		n, ok := p.uint()
		m.Base = &n
		return 1 << 7, ok
	case "ops":
		// The ops are read by the store's scanner, the one the op log and the feed use.
		ops, end, ok := store.ParseOpsAt(p.s, p.i)
		p.i = end
		m.Ops = ops
		return 1 << 8, ok
	}
	return 0, false
}

// internType returns the constant for a known message type, so that decoding one
// allocates nothing.
func internType(s string) string {
	for _, t := range [...]string{TypeOp, TypeSub, TypeUnsub, TypePing, TypeHello} {
		if s == t {
			return t
		}
	}
	return s
}

func (p *fastParser) ws() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.s)
}

// str returns a string without escapes or control characters, of valid UTF-8
// (encoding/json would turn invalid bytes into U+FFFD), as a substring of the text.

func (p *fastParser) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start := p.i
	ascii := true
	for ; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s, ascii || utf8.ValidString(s)
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// uint reads a non-negative integer of at most 18 digits (beyond, or with a sign, a
// fraction or an exponent, encoding/json decides).
func (p *fastParser) uint() (int64, bool) {
	start := p.i
	var n int64
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		n = n*10 + int64(p.s[p.i]-'0')
		p.i++
	}
	d := p.i - start
	if d == 0 || d > 18 || (d > 1 && p.s[start] == '0') {
		return 0, false
	}
	if p.i < len(p.s) && (p.s[p.i] == '.' || p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		return 0, false
	}
	return n, true
}
