// Package store is the DSM in Redis: objects of string fields with a revision, an op log,
// one atomic commit script, a change feed read by every gateway instance, and the
// transform rules shared with the browser client. docs/dsm-protocol.md is its contract.
package store

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// MaxSafeInt is the largest seq, revision or base the DSM accepts: 2^53-1, the largest
// integer every client represents exactly (a JavaScript number, a Lua number in Redis's
// scripts, a double in any JSON library). Beyond it two seqs could compare equal.
const MaxSafeInt = 1<<53 - 1

// OpKind is the kind of one element of an op.
type OpKind string

// The element kinds of an op.
const (
	OpSet    OpKind = "set"
	OpDel    OpKind = "del"
	OpExpect OpKind = "expect"
)

// Op is one element of an operation: set a field, delete it, or expect it to hold a value.
// For OpExpect, a nil Value means "the field must be absent".
type Op struct {
	Kind  OpKind
	Field string
	Value *string
}

// Set returns a set element.
func Set(field, value string) Op { return Op{Kind: OpSet, Field: field, Value: &value} }

// Del returns a delete element.
func Del(field string) Op { return Op{Kind: OpDel, Field: field} }

// Expect returns an expect element: field must equal value.
func Expect(field, value string) Op { return Op{Kind: OpExpect, Field: field, Value: &value} }

// ExpectAbsent returns an expect element: field must be absent.
func ExpectAbsent(field string) Op { return Op{Kind: OpExpect, Field: field} }

type wireOp struct {
	O string  `json:"o"`
	F string  `json:"f"`
	V *string `json:"v,omitempty"`
}

// MarshalJSON encodes the element as {"o":kind,"f":field,"v":value}.
func (o Op) MarshalJSON() ([]byte, error) {
	w := wireOp{O: string(o.Kind), F: o.Field}
	if o.Kind != OpDel {
		w.V = o.Value
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes and checks one element.
func (o *Op) UnmarshalJSON(b []byte) error {
	var w wireOp
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadOp, err)
	}
	k := OpKind(w.O)
	switch k {
	case OpSet:
		if w.V == nil {
			return fmt.Errorf("%w: set %q without a value", ErrBadOp, w.F)
		}
	case OpDel:
		w.V = nil
	case OpExpect:
	default:
		return fmt.Errorf("%w: unknown kind %q", ErrBadOp, w.O)
	}
	*o = Op{Kind: k, Field: w.F, Value: w.V}
	return nil
}

// Limits bound the size of one op. Zero fields mean "no limit".
type Limits struct {
	MaxOps        int // elements per op
	MaxFieldBytes int // bytes per field name
	MaxValueBytes int // bytes per value
}

// DefaultLimits returns the limits documented in docs/dsm-protocol.md (DefaultConfig's).
func DefaultLimits() Limits { return DefaultConfig().Limits }

// Validate checks an op against the limits: it must have at least one element, known
// kinds, non-empty field names, strings of valid UTF-8, and stay within the sizes (bytes
// of UTF-8). Invalid UTF-8 (a cut multi-byte sequence, an encoded UTF-16 surrogate) is
// refused because JSON cannot carry it: every encoder on the way to another replica would
// replace it with U+FFFD, and replicas would hold different strings.
func Validate(ops []Op, l Limits) error {
	if len(ops) == 0 {
		return fmt.Errorf("%w: empty op", ErrBadOp)
	}
	if l.MaxOps > 0 && len(ops) > l.MaxOps {
		return fmt.Errorf("%w: %d elements > %d", ErrTooManyOps, len(ops), l.MaxOps)
	}
	for i, o := range ops {
		switch o.Kind {
		case OpSet:
			if o.Value == nil {
				return fmt.Errorf("%w: element %d: set without value", ErrBadOp, i)
			}
		case OpDel, OpExpect:
		default:
			return fmt.Errorf("%w: element %d: unknown kind %q", ErrBadOp, i, o.Kind)
		}
		if o.Field == "" {
			return fmt.Errorf("%w: element %d: empty field name", ErrBadOp, i)
		}
		if !utf8.ValidString(o.Field) {
			return fmt.Errorf("%w: element %d: field name %.40q is not valid UTF-8", ErrBadOp, i, o.Field)
		}
		if o.Value != nil && !utf8.ValidString(*o.Value) {
			return fmt.Errorf("%w: element %d: value of %.40q is not valid UTF-8", ErrBadOp, i, o.Field)
		}
		if l.MaxFieldBytes > 0 && len(o.Field) > l.MaxFieldBytes {
			return fmt.Errorf("%w: field name of %d bytes > %d", ErrValueTooLong, len(o.Field), l.MaxFieldBytes)
		}
		if o.Value != nil && l.MaxValueBytes > 0 && len(*o.Value) > l.MaxValueBytes {
			return fmt.Errorf("%w: value of %q is %d bytes > %d", ErrValueTooLong, o.Field, len(*o.Value), l.MaxValueBytes)
		}
	}
	return nil
}

// Apply applies the set and del elements of ops to fields in order (expects are ignored:
// they are checked by the server at commit time).
func Apply(fields map[string]string, ops []Op) {
	for _, o := range ops {
		switch o.Kind {
		case OpSet:
			fields[o.Field] = *o.Value
		case OpDel:
			delete(fields, o.Field)
		}
	}
}

// Writes returns only the set and del elements of ops (what is logged and sent to other
// replicas once the expects held).
func Writes(ops []Op) []Op {
	out := make([]Op, 0, len(ops))
	for _, o := range ops {
		if o.Kind != OpExpect {
			out = append(out, o)
		}
	}
	return out
}
