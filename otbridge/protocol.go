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
	T     string     `json:"t"`
	ID    string     `json:"id,omitempty"`
	Token string     `json:"token,omitempty"`
	Obj   string     `json:"obj,omitempty"`
	Since *int64     `json:"since,omitempty"`
	Base  *int64     `json:"base,omitempty"`
	Seq   int64      `json:"seq,omitempty"`
	Ops   []store.Op `json:"ops,omitempty"`
}

// Decode parses and checks one client frame. It returns a *ProtoError with bad_json when
// the frame is not a JSON object and bad_message when the type is unknown or a field is
// missing or malformed. Limits (op count, value length) are checked later, against the
// store's configuration. The returned Msg carries whatever id and obj could be read, so an
// error can echo them.
func Decode(b []byte) (Msg, *ProtoError) {
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
	if len(m.ID) > maxIDBytes {
		m.ID = ""
		return m, protoErr(CodeBadMessage, "id longer than %d bytes", maxIDBytes)
	}
	switch m.T {
	case TypeHello:
		if m.Token == "" {
			return m, protoErr(CodeBadMessage, "hello without token")
		}
	case TypeSub:
		if err := checkObj(m.Obj); err != nil {
			return m, err
		}
		if m.Since != nil && *m.Since < 0 {
			return m, protoErr(CodeBadMessage, "since %d < 0", *m.Since)
		}
	case TypeUnsub:
		if err := checkObj(m.Obj); err != nil {
			return m, err
		}
	case TypeOp:
		if err := checkObj(m.Obj); err != nil {
			return m, err
		}
		if m.Seq < 1 {
			return m, protoErr(CodeBadMessage, "op without seq >= 1")
		}
		if m.Base != nil && *m.Base < 0 {
			return m, protoErr(CodeBadMessage, "base %d < 0", *m.Base)
		}
		if len(m.Ops) == 0 {
			return m, protoErr(CodeBadMessage, "op without ops")
		}
	case TypePing:
	case "":
		return m, protoErr(CodeBadMessage, "message without type t")
	default:
		t := m.T
		m.T = ""
		return m, protoErr(CodeBadMessage, "unknown message type %.32q", t)
	}
	return m, nil
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

func encodeNack(obj string, seq int64, e *ProtoError) []byte {
	b := head(TypeNack, obj)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
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
