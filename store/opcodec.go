package store

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// The op log and the feed carry an op's writes as JSON, encoded once per commit and
// decoded once per feed entry by every gateway: by hand, as for the protocol's messages,
// because encoding/json costs a reflective walk and several allocations per element.

// AppendOps appends ops as the JSON array [{"o":kind,"f":field,"v":value},...] that
// json.Marshal(ops) yields (a del has no "v"), decoding to the same ops.
func AppendOps(b []byte, ops []Op) []byte {
	b = append(b, '[')
	for i, o := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"o":`...)
		b = appendJSONString(b, string(o.Kind))
		b = append(b, `,"f":`...)
		b = appendJSONString(b, o.Field)
		if o.Kind != OpDel && o.Value != nil {
			b = append(b, `,"v":`...)
			b = appendJSONString(b, *o.Value)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendJSONString appends s quoted; plain ASCII is copied, anything that needs escaping
// goes through encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// ParseOps decodes the JSON array of ops AppendOps writes: the elements json.Unmarshal
// into []Op yields (FuzzParseOps checks it). Strings of the common shape (no escape,
// valid UTF-8) are substrings of s, so a one-element op costs one allocation; anything
// else is left to encoding/json.
func ParseOps(s string) ([]Op, error) {
	if ops, ok := parseOpsFast(s); ok {
		return ops, nil
	}
	var ops []Op
	if err := json.Unmarshal([]byte(s), &ops); err != nil {
		return nil, fmt.Errorf("%w: ops: %v", ErrBadOp, err)
	}
	return ops, nil
}

// opsScanner walks a JSON text held in a string.
type opsScanner struct {
	s string
	i int
}

func (p *opsScanner) ws() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\r' || p.s[p.i] == '\n') {
		p.i++
	}
}

func (p *opsScanner) eat(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string without escapes or control characters, of valid UTF-8.
func (p *opsScanner) str() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	start, ascii := p.i, true
	for ; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; {
		case c == '"':
			v := p.s[start:p.i]
			p.i++
			return v, ascii || utf8.ValidString(v)
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

func parseOpsFast(s string) ([]Op, bool) {
	ops, end, ok := ParseOpsAt(s, 0)
	if !ok {
		return nil, false
	}
	p := opsScanner{s: s, i: end}
	p.ws()
	return ops, p.i == len(s)
}

// ParseOpsAt reads the JSON array of op elements that starts at s[i] (after whitespace),
// of the common shape: a non-empty array of objects {"o":kind,"f":field,"v":value} with
// each key at most once, a valid kind, and strings without escapes, of valid UTF-8. It
// returns what json.Unmarshal into []Op yields for that array, its strings substrings of
// s, and the index just after the array; ok false means another shape (or no JSON), which
// the caller leaves to encoding/json. The op log, the feed and otbridge's decoder of client
// frames all read ops with it: one scanner, held to encoding/json by FuzzParseOps and
// otbridge's FuzzParseFast.
func ParseOpsAt(s string, i int) (ops []Op, end int, ok bool) {
	if i < 0 || i > len(s) {
		return nil, 0, false
	}
	p := opsScanner{s: s, i: i}
	if !p.eat('[') || p.eat(']') {
		return nil, 0, false // an empty array: json.Unmarshal gives a non-nil empty slice
	}
	// Most ops have one or two elements: their values live beside them in one allocation.
	type opsBuf struct {
		ops  [2]Op
		vals [2]string
	}
	buf := new(opsBuf)
	ops = buf.ops[:0]
	for {
		o, v, hasV, ok := p.elem()
		if !ok {
			return nil, 0, false
		}
		switch {
		case o.Kind == OpDel || !hasV:
			if o.Kind == OpSet {
				return nil, 0, false // set without a value: an error, worded by encoding/json's path
			}
		case len(ops) < len(buf.vals):
			buf.vals[len(ops)] = v
			o.Value = &buf.vals[len(ops)]
		default:
			vp := new(string)
			*vp = v
			o.Value = vp
		}
		ops = append(ops, o)
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return ops, p.i, true
		}
		return nil, 0, false
	}
}

// elem reads one element {"o":kind,"f":field,"v":value} with each key at most once.
func (p *opsScanner) elem() (o Op, v string, hasV, ok bool) {
	if !p.eat('{') || p.eat('}') {
		return o, "", false, false
	}
	var seen uint8
	for {
		key, ok := p.str()
		if !ok || !p.eat(':') {
			return o, "", false, false
		}
		var bit uint8
		switch key {
		case "o":
			bit = 1
			k, ok := p.str()
			if !ok {
				return o, "", false, false
			}
			switch OpKind(k) {
			case OpSet:
				o.Kind = OpSet
			case OpDel:
				o.Kind = OpDel
			case OpExpect:
				o.Kind = OpExpect
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
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return o, v, hasV, seen&1 != 0
		}
		return o, "", false, false
	}
}
