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
	p := fastParser{b: b}
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
		key, ok := p.rawString()
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

// fastParser walks one frame; text is the frame as a string, converted once on first
// use so that every string of the message is a substring of it.
type fastParser struct {
	b    []byte
	i    int
	text string
}

// member decodes the value of key into m and returns the key's bit (for duplicates).
func (p *fastParser) member(m *Msg, key []byte) (uint16, bool) {
	switch string(key) {
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
		ops, ok := p.ops()
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
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *fastParser) end() bool {
	p.ws()
	return p.i == len(p.b)
}

// rawString returns the bytes of a string without escapes or control characters, of
// valid UTF-8 (encoding/json would turn invalid bytes into U+FFFD).
func (p *fastParser) rawString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// str returns a string value as a substring of the frame's text.
func (p *fastParser) str() (string, bool) {
	start := p.i + 1
	s, ok := p.rawString()
	if !ok {
		return "", false
	}
	if p.text == "" {
		p.text = string(p.b)
	}
	return p.text[start : start+len(s)], true
}

// uint reads a non-negative integer of at most 18 digits (beyond, or with a sign, a
// fraction or an exponent, encoding/json decides).
func (p *fastParser) uint() (int64, bool) {
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	d := p.i - start
	if d == 0 || d > 18 || (d > 1 && p.b[start] == '0') {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return n, true
}

// ops reads a non-empty array of elements {"o":kind,"f":field,"v":value} of valid kinds.
func (p *fastParser) ops() ([]store.Op, bool) {
	if !p.eat('[') {
		return nil, false
	}
	// Most ops have one or two elements: their values live beside them in one allocation.
	type opsBuf struct {
		ops  [2]store.Op
		vals [2]string
	}
	buf := new(opsBuf)
	ops := buf.ops[:0]
	for {
		p.ws()
		o, v, hasV, ok := p.elem()
		if !ok {
			return nil, false
		}
		if hasV && o.Kind != store.OpDel {
			if len(ops) < len(buf.vals) {
				buf.vals[len(ops)] = v
				o.Value = &buf.vals[len(ops)]
			} else {
				vp := new(string)
				*vp = v
				o.Value = vp
			}
		} else if o.Kind == store.OpSet {
			return nil, false // set without a value: an error, worded by the slow path
		}
		ops = append(ops, o)
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return ops, true
		}
		return nil, false
	}
}

// elem reads one element of an op.
func (p *fastParser) elem() (o store.Op, v string, hasV, ok bool) {
	if !p.eat('{') {
		return o, "", false, false
	}
	var seen uint8
	p.ws()
	if p.eat('}') {
		return o, "", false, false // no kind: an error
	}
	for {
		p.ws()
		key, ok := p.rawString()
		if !ok {
			return o, "", false, false
		}
		p.ws()
		if !p.eat(':') {
			return o, "", false, false
		}
		p.ws()
		var bit uint8
		switch string(key) {
		case "o":
			bit = 1
			s, ok := p.str()
			if !ok {
				return o, "", false, false
			}
			switch store.OpKind(s) {
			case store.OpSet:
				o.Kind = store.OpSet
			case store.OpDel:
				o.Kind = store.OpDel
			case store.OpExpect:
				o.Kind = store.OpExpect
			default:
				return o, "", false, false
			}
		case "f":
			bit = 2
			if o.Field, ok = p.str(); !ok {
				return o, "", false, false
			}
		case "v":
			bit = 4
			if v, ok = p.str(); !ok {
				return o, "", false, false
			}
			hasV = true
		default:
			return o, "", false, false
		}
		if seen&bit != 0 {
			return o, "", false, false
		}
		seen |= bit
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return o, v, hasV, seen&1 != 0
		}
		return o, "", false, false
	}
}
