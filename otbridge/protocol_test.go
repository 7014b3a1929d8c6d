package otbridge

import (
	"bytes"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"

	"dsmgw/store"
)

func TestEncodersProduceValidJSON(t *testing.T) {
	t.Parallel()
	ops := []store.Op{store.Set("a\"b", "x\\y\n"), store.Del("é"), store.ExpectAbsent("c"), store.Expect("d", "")}
	fields := map[string]string{"a": "1", "b\u2028": "\x00"}
	for name, b := range map[string][]byte{
		"op":      encodeOp("players/x/audio", 3, 2, ops),
		"ack":     encodeAck("o", 1, 2),
		"nack":    encodeNack("o", 1, protoErr(CodeExpectFailed, "a \"quoted\" msg"), 3),
		"snap":    encodeFields(TypeSnap, "o", 4, fields),
		"empty":   encodeFields(TypeResync, "o", 4, map[string]string{}),
		"catchup": encodeCatchup("o", 9, []store.Entry{{Rev: 8, Client: "k", Seq: 3, Ops: ops}, {Rev: 9, Client: "z", Seq: 1, Ops: ops}}, "k"),
		"error":   encodeError(protoErr(CodeForbidden, "no"), "id1", "o"),
		"pong":    encodePong("x"),
	} {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Errorf("%s: %s: %v", name, b, err)
		}
	}
	var back struct {
		Ops    []store.Op        `json:"ops"`
		Fields map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(encodeOp("o", 1, 0, ops), &back); err != nil || len(back.Ops) != len(ops) {
		t.Fatalf("ops round trip: %v %+v", err, back)
	}
	for i := range ops {
		if back.Ops[i].Kind != ops[i].Kind || back.Ops[i].Field != ops[i].Field ||
			(ops[i].Value == nil) != (back.Ops[i].Value == nil) ||
			(ops[i].Value != nil && *ops[i].Value != *back.Ops[i].Value) {
			t.Errorf("element %d: %+v != %+v", i, back.Ops[i], ops[i])
		}
	}
	if err := json.Unmarshal(encodeFields(TypeSnap, "o", 1, fields), &back); err != nil || !maps.Equal(back.Fields, fields) {
		t.Fatalf("fields round trip: %v %v", err, back.Fields)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`[1]`:                              CodeBadJSON,
		`{"t":`:                            CodeBadJSON,
		`"hello"`:                          CodeBadJSON,
		`{}`:                               CodeBadMessage,
		`{"t":"nope"}`:                     CodeBadMessage,
		`{"t":"hello"}`:                    CodeBadMessage,
		`{"t":"sub"}`:                      CodeBadMessage,
		`{"t":"sub","obj":"a//b"}`:         CodeBadMessage,
		`{"t":"sub","obj":"a","since":-1}`: CodeBadMessage,
		`{"t":"op","obj":"a","ops":[]}`:    CodeBadMessage,
		`{"t":"op","obj":"a","seq":1}`:     CodeBadMessage,
		`{"t":"op","obj":"a","seq":"1"}`:   CodeBadMessage,
		`{"t":"op","obj":"a","seq":1,"ops":[{"o":"zap","f":"x"}]}`:                                   CodeBadMessage,
		`{"t":"op","obj":"a","seq":1,"ops":[{"o":"set","f":"x"}]}`:                                   CodeBadMessage,
		`{"t":"ping","id":"0123456789012345678901234567890123456789012345678901234567890123456789"}`: CodeBadMessage,
		`{"t":"ping","id":"x"}`: "",
		`{"t":"op","obj":"a","seq":1,"ops":[{"o":"set","f":"x","v":"\ud83d"}]}`:           CodeBadMessage,
		`{"t":"op","obj":"a","seq":1,"ops":[{"o":"set","f":"x","v":"\ud83d\ude00"}]}`:     "",
		`{"t":"op","obj":"a","seq":1,"ops":[{"o":"set","f":"x","v":"\\ud83d"}]}`:          "",
		`{"t":"op","obj":"a","seq":9007199254740991,"ops":[{"o":"set","f":"x","v":"1"}]}`: "",
		`{"t":"op","obj":"a","seq":9007199254740992,"ops":[{"o":"set","f":"x","v":"1"}]}`: CodeBadMessage,
		`{"t":"op","obj":"a/../b","seq":1,"ops":[{"o":"set","f":"x","v":"1"}]}`:           CodeBadMessage,
		`{"t":"sub","obj":"a","since":9007199254740992}`:                                  CodeBadMessage,
		`{"t":"op","obj":"a","seq":1,"base":0,"ops":[{"o":"set","f":"x","v":"1"}]}`:       "",
		`{"t":"sub","obj":"users/bob","since":4}`:                                         "",
	}
	for in, want := range cases {
		_, err := Decode([]byte(in))
		got := ""
		if err != nil {
			got = err.Code
		}
		if got != want {
			t.Errorf("%s: got %q (%v), want %q", in, got, err, want)
		}
	}
}

// FuzzDecode checks that the decoder never panics, that an accepted message is
// well-formed for its type, and that an accepted op survives a round trip through the
// encoder the server uses for remote ops.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"t":"hello","token":"abc.def"}`,
		`{"t":"sub","obj":"players/k/audio","since":3,"id":"1"}`,
		`{"t":"unsub","obj":"users"}`,
		`{"t":"op","obj":"players","seq":2,"ops":[{"o":"set","f":"players/k/audio","v":"audio"},{"o":"del","f":"x"},{"o":"expect","f":"y"}]}`,
		`{"t":"ping"}`,
		`{"t":"op","obj":"a","seq":1,"base":0,"ops":[{"o":"set","f":"\u00e9\"","v":"\n"}]}`,
		`[]`, `{"t":null}`, `{"t":"op","ops":[null]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if err.Code != CodeBadJSON && err.Code != CodeBadMessage {
				t.Fatalf("unexpected code %q", err.Code)
			}
			return
		}
		switch m.T {
		case TypeSub, TypeUnsub, TypeOp:
			if store.ValidAddress(m.Obj) != nil {
				t.Fatalf("accepted bad obj %q", m.Obj)
			}
		}
		if m.T != TypeOp {
			return
		}
		if m.Seq < 1 || len(m.Ops) == 0 {
			t.Fatalf("accepted op without seq or ops: %+v", m)
		}
		var back struct {
			Ops []store.Op `json:"ops"`
		}
		if err := json.Unmarshal(encodeOp(m.Obj, 1, 0, m.Ops), &back); err != nil {
			t.Fatalf("re-encoded op does not parse: %v", err)
		}
		if len(back.Ops) != len(m.Ops) {
			t.Fatalf("round trip lost elements")
		}
	})
}

// FuzzLoneSurrogate checks hasLoneSurrogate against what a JSON decoder does: a lone
// surrogate escape is exactly what makes it put U+FFFD in a string, so for JSON text free
// of U+FFFD of its own, the decoded strings hold U+FFFD if and only if the scanner reports
// a lone surrogate.
func FuzzLoneSurrogate(f *testing.F) {
	for _, s := range []string{`"\ud83d"`, `"\ud83d\ude00"`, `"\\ud83d"`, `{"\udc00":"x"}`, `["a\u0041","\uDBFF\uDFFF"]`,
		`"\ud83d\\ude00"`, `"\ud800\ud800\udc00"`, `"\\\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) || bytes.Contains(b, []byte("\ufffd")) || bytes.Contains(b, []byte("\uFFFD")) ||
			bytes.Contains(b, []byte("\uFffd")) || bytes.ContainsRune(b, utf8.RuneError) || bytes.Contains(bytes.ToLower(b), []byte("\ufffd")) {
			return
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return
		}
		if got, want := hasLoneSurrogate(b), holdsReplacement(v); got != want {
			t.Fatalf("%s: scanner says %v, decoder replaced: %v", b, got, want)
		}
	})
}

// holdsReplacement reports whether any string (or key) in a decoded JSON value holds U+FFFD.
func holdsReplacement(v any) bool {
	switch x := v.(type) {
	case string:
		return strings.ContainsRune(x, utf8.RuneError)
	case []any:
		for _, e := range x {
			if holdsReplacement(e) {
				return true
			}
		}
	case map[string]any:
		for k, e := range x {
			if strings.ContainsRune(k, utf8.RuneError) || holdsReplacement(e) {
				return true
			}
		}
	}
	return false
}
