package otbridge

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"dsmgw/store"
)

// Message types of docs/dsm-protocol.md.
const (
	TypeHello    = "hello"
	TypeWelcome  = "welcome"
	TypeSub      = "sub"
	TypeSnap     = "snap"
	TypeCatchup  = "catchup"
	TypeUnsub    = "unsub"
	TypeUnsubbed = "unsubbed"
	TypeOp       = "op"
	TypeAck      = "ack"
	TypeNack     = "nack"
	TypePing     = "ping"
	TypePong     = "pong"
	TypeResync   = "resync"
	TypeError    = "error"
)

// maxIDBytes bounds the id a client may attach to a message (echoed in errors).
const maxIDBytes = 64

// Msg is one decoded client message. Which fields are set depends on T.
type Msg struct {
	T     string `json:"t"`
	ID    string `json:"id,omitempty"`
	Token string `json:"token,omitempty"`
	Obj   string `json:"obj,omitempty"`
	Since *int64 `json:"since,omitempty"`
	Base  *int64 `json:"base,omitempty"`
	Seq   int64  `json:"seq,omitempty"`
	// Epoch (hello) names this client instance, a page load: seqs deduplicate within it,
	// and a new epoch may not reuse a seq (docs/dsm-protocol.md, "Seq").
	Epoch string     `json:"epoch,omitempty"`
	Ops   []store.Op `json:"ops,omitempty"`
}

// Decode parses and checks one client frame. It returns a *ProtoError with bad_json when
// the frame is not a JSON object and bad_message when the type is unknown, a field is
// missing or malformed, a number is beyond 2^53-1, or a string holds a \u escape of a lone
// UTF-16 surrogate (which JSON decoders, Go's included, silently turn into U+FFFD: the
// writer would keep a string no other replica has). Limits (op count, value length) are
// checked later, against the store's configuration. The returned Msg carries whatever id
// and obj could be read, so an error can echo them; for an op refused after it decoded,
// Nackable tells that its obj and seq can be answered with a nack.
func Decode(b []byte) (Msg, *ProtoError) {
	if m, ok := parseFast(b); ok {
		// No escape in the frame: no lone surrogate either.
		return m, checkMsg(&m)
	}
	return decodeJSON(b)
}

// decodeJSON is Decode through encoding/json: for every frame parseFast leaves, and the
// reference FuzzParseFast holds parseFast to.
func decodeJSON(b []byte) (Msg, *ProtoError) {
	var m Msg
	if !json.Valid(b) || firstNonSpace(b) != '{' {
		return m, protoErr(CodeBadJSON, "the frame is not a JSON object")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		// Recover id and obj for the error reply when they are well-formed.
		var partial struct {
			ID  string `json:"id"`
			Obj string `json:"obj"`
		}
		_ = json.Unmarshal(b, &partial)
		m = Msg{ID: partial.ID, Obj: partial.Obj}
		if len(m.ID) > maxIDBytes {
			m.ID = ""
		}
		return m, protoErr(CodeBadMessage, "%v", err)
	}
	if err := checkMsg(&m); err != nil {
		return m, err
	}
	if hasLoneSurrogate(b) {
		return m, protoErr(CodeBadMessage, "a string holds a lone UTF-16 surrogate escape (a string cut inside a character?)")
	}
	return m, nil
}

// checkMsg checks a decoded message for its type. It clears an id too long to echo and a
// type that is unknown.
func checkMsg(m *Msg) *ProtoError {
	if len(m.ID) > maxIDBytes {
		m.ID = ""
		return protoErr(CodeBadMessage, "id longer than %d bytes", maxIDBytes)
	}
	switch m.T {
	case TypeHello:
		if m.Token == "" {
			return protoErr(CodeBadMessage, "hello without token")
		}
		if !store.ValidEpoch(m.Epoch) {
			return protoErr(CodeBadMessage, "epoch must be at most 32 characters of [A-Za-z0-9_-]")
		}
	case TypeSub:
		if err := checkObj(m.Obj); err != nil {
			return err
		}
		if m.Since != nil && (*m.Since < 0 || *m.Since > store.MaxSafeInt) {
			return protoErr(CodeBadMessage, "since %d outside 0..2^53-1", *m.Since)
		}
	case TypeUnsub:
		if err := checkObj(m.Obj); err != nil {
			return err
		}
	case TypeOp:
		if err := checkObj(m.Obj); err != nil {
			return err
		}
		if m.Seq < 1 || m.Seq > store.MaxSafeInt {
			return protoErr(CodeBadMessage, "op without seq in 1..2^53-1")
		}
		if m.Base != nil && (*m.Base < 0 || *m.Base > store.MaxSafeInt) {
			return protoErr(CodeBadMessage, "base %d outside 0..2^53-1", *m.Base)
		}
		if len(m.Ops) == 0 {
			return protoErr(CodeBadMessage, "op without ops")
		}
	case TypePing:
	case "":
		return protoErr(CodeBadMessage, "message without type t")
	default:
		t := m.T
		m.T = ""
		return protoErr(CodeBadMessage, "unknown message type %.32q", t)
	}
	return nil
}

// Nackable reports whether a message Decode refused is an op whose obj and seq are valid,
// so that the refusal is a nack the client matches to its op and rolls back, as for any
// other refused op.
func (m Msg) Nackable() bool {
	return m.T == TypeOp && m.Seq >= 1 && m.Seq <= store.MaxSafeInt && store.ValidAddress(m.Obj) == nil
}

// hasLoneSurrogate reports whether valid JSON text b holds a \u escape of a UTF-16
// surrogate that is not half of a high-low pair. Backslashes occur only inside strings in
// valid JSON, so no string tracking is needed.
func hasLoneSurrogate(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++ // the escaped character; the loop steps past it
		if i >= len(b) || b[i] != 'u' || i+4 >= len(b) {
			continue
		}
		u := hex4(b[i+1 : i+5])
		i += 4
		switch {
		case u >= 0xDC00 && u <= 0xDFFF:
			return true // a low half without a high one before it
		case u >= 0xD800 && u <= 0xDBFF:
			if i+6 < len(b) && b[i+1] == '\\' && b[i+2] == 'u' {
				if v := hex4(b[i+3 : i+7]); v >= 0xDC00 && v <= 0xDFFF {
					i += 6
					continue
				}
			}
			return true // a high half not followed by a low one
		}
	}
	return false
}

// hex4 decodes four hex digits (-1 if any is not one).
func hex4(b []byte) int {
	n := 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			n = n<<4 | int(c-'0')
		case c >= 'a' && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case c >= 'A' && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		default:
			return -1
		}
	}
	return n
}

func checkObj(obj string) *ProtoError {
	if obj == "" {
		return protoErr(CodeBadMessage, "missing obj")
	}
	if err := store.ValidAddress(obj); err != nil {
		return protoErr(CodeBadMessage, "%v", err)
	}
	return nil
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// The encoders below append JSON by hand: they run once per message on the hot path, and
// json.Marshal of []store.Op costs several allocations per element.

func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // rare: escapes, non-ASCII
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendOps(b []byte, ops []store.Op) []byte {
	b = append(b, '[')
	for i, o := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"o":`...)
		b = appendString(b, string(o.Kind))
		b = append(b, `,"f":`...)
		b = appendString(b, o.Field)
		if o.Kind != store.OpDel && o.Value != nil {
			b = append(b, `,"v":`...)
			b = appendString(b, *o.Value)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func appendFields(b []byte, fields map[string]string) []byte {
	b = append(b, '{')
	first := true
	for k, v := range fields {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	return append(b, '}')
}

func head(t, obj string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"t":"`...)
	b = append(b, t...)
	b = append(b, `","obj":`...)
	return appendString(b, obj)
}

// encodeOp encodes a remote op; seq > 0 marks an entry written by the receiving client.
func encodeOp(obj string, rev, seq int64, ops []store.Op) []byte {
	b := head(TypeOp, obj)
	b = append(b, `,"rev":`...)
	b = strconv.AppendInt(b, rev, 10)
	if seq > 0 {
		b = append(b, `,"seq":`...)
		b = strconv.AppendInt(b, seq, 10)
	}
	b = append(b, `,"ops":`...)
	b = appendOps(b, ops)
	return append(b, '}')
}

func encodeAck(obj string, seq, rev int64) []byte {
	b := head(TypeAck, obj)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"rev":`...)
	b = strconv.AppendInt(b, rev, 10)
	return append(b, '}')
}

// encodeNack encodes a refused op; last > 0 adds the writer's last committed seq (for
// seq_reused).
func encodeNack(obj string, seq int64, e *ProtoError, last int64) []byte {
	b := head(TypeNack, obj)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	if last > 0 {
		b = append(b, `,"last":`...)
		b = strconv.AppendInt(b, last, 10)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"msg":`...)
	b = appendString(b, e.Msg)
	return append(b, '}')
}

// encodeFields encodes a snap or resync.
func encodeFields(t, obj string, rev int64, fields map[string]string) []byte {
	b := head(t, obj)
	b = append(b, `,"rev":`...)
	b = strconv.AppendInt(b, rev, 10)
	b = append(b, `,"fields":`...)
	b = appendFields(b, fields)
	return append(b, '}')
}

// encodeCatchup encodes the entries after a client's revision; own entries (written by
// client) carry their seq.
func encodeCatchup(obj string, rev int64, log []store.Entry, client string) []byte {
	b := head(TypeCatchup, obj)
	b = append(b, `,"rev":`...)
	b = strconv.AppendInt(b, rev, 10)
	b = append(b, `,"log":[`...)
	for i, e := range log {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rev":`...)
		b = strconv.AppendInt(b, e.Rev, 10)
		if e.Client == client && e.Seq > 0 {
			b = append(b, `,"seq":`...)
			b = strconv.AppendInt(b, e.Seq, 10)
		}
		b = append(b, `,"ops":`...)
		b = appendOps(b, e.Ops)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func encodeUnsubbed(obj string) []byte { return append(head(TypeUnsubbed, obj), '}') }

func encodeError(e *ProtoError, id, obj string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"t":"error","code":`...)
	b = appendString(b, e.Code)
	b = append(b, `,"msg":`...)
	b = appendString(b, e.Msg)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, id)
	}
	if obj != "" {
		b = append(b, `,"obj":`...)
		b = appendString(b, obj)
	}
	return append(b, '}')
}

func encodePong(id string) []byte {
	b := append(make([]byte, 0, 32), `{"t":"pong"`...)
	if id != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, id)
	}
	return append(b, '}')
}

// Limits are the limits announced in welcome.
type Limits struct {
	MaxFrameBytes int64   `json:"max_frame_bytes"`
	MaxOps        int     `json:"max_ops"`
	MaxFieldBytes int     `json:"max_field_bytes"`
	MaxValueBytes int     `json:"max_value_bytes"`
	MaxFields     int     `json:"max_fields"`
	MaxSubs       int     `json:"max_subs"`
	MaxObjects    int     `json:"max_objects"`
	OpsPerSecond  float64 `json:"ops_per_second"`
}

// Welcome is the server's answer to a valid hello.
type Welcome struct {
	T        string `json:"t"`
	Client   string `json:"client"`
	User     string `json:"user,omitempty"`
	Instance string `json:"instance"`
	Limits   Limits `json:"limits"`
}
