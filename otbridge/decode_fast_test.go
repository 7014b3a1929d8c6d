package otbridge

import (
	"encoding/json"
	"reflect"
	"testing"
)

// fastSeeds are frames of the shapes parseFast takes and of the shapes it must leave to
// encoding/json.
var fastSeeds = []string{
	`{"t":"hello","token":"abc.def","epoch":"e1"}`,
	`{"t":"sub","obj":"players/k/audio","since":3,"id":"1"}`,
	`{"t":"unsub","obj":"users"}`,
	`{"t":"op","obj":"bench/x/p1","seq":12,"ops":[{"o":"set","f":"f3","v":"0123456789abcdef0123456789abcdef"}]}`,
	`{"t":"op","obj":"players","seq":2,"base":0,"ops":[{"o":"set","f":"a","v":"é"},{"o":"del","f":"x","v":"y"},{"o":"expect","f":"y"},{"f":"z","o":"expect","v":""}]}`,
	` { "t" : "ping" , "id" : "p" } `,
	`{"t":"op","obj":"a","seq":1,"ops":[{"o":"set","f":"\u00e9\"","v":"\n"}]}`,
	`{"t":"op","obj":"a","seq":1,"Seq":2,"ops":[{"o":"set","f":"f","v":"v"}]}`,
	`{"t":"op","obj":"a","seq":1,"seq":2,"ops":[{"o":"set","f":"f","v":"v"}]}`,
	`{"t":"op","obj":"a","seq":1.0,"ops":[]}`, `{"t":"op","obj":"a","seq":01}`, `{"t":"op","seq":-1}`,
	`{"t":"op","obj":"a","seq":99999999999999999999}`, `{"t":"sub","obj":"a","since":null}`,
	`{"t":"op","obj":"a","seq":1,"ops":[{"o":"set","f":"f"}]}`, `{"t":"op","ops":[{"o":"bad","f":"f"}]}`,
	"{\"t\":\"op\",\"obj\":\"a\xff\"}", `{"t":"op","obj":"a\ud800"}`, `{"t":"x"}`, `{}`, `[]`, `{"t":null}`,
	`{"t":"op","ops":[null]}`, `{"t":"ping"} x`, `{"t":"ping",}`, `{"t":"ping","extra":1}`,
}

// FuzzParseFast holds the hand-written decoder to encoding/json: whatever frame parseFast
// takes, json.Unmarshal takes too and yields the same Msg, and Decode (fast path first)
// answers every frame exactly as decodeJSON (encoding/json alone) does, refusals and their
// wording included.
func FuzzParseFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, ok := parseFast(b); ok {
			var want Msg
			if !json.Valid(b) || json.Unmarshal(b, &want) != nil || firstNonSpace(b) != '{' {
				t.Fatalf("parseFast took %q, which encoding/json refuses", b)
			}
			if !reflect.DeepEqual(normOps(m), normOps(want)) {
				t.Fatalf("parseFast(%q) = %+v, encoding/json %+v", b, m, want)
			}
		}
		got, gerr := Decode(b)
		want, werr := decodeJSON(b)
		if !reflect.DeepEqual(normOps(got), normOps(want)) || !reflect.DeepEqual(gerr, werr) {
			t.Fatalf("Decode(%q) = %+v, %v; decodeJSON %+v, %v", b, got, gerr, want, werr)
		}
	})
}

// normOps makes an empty Ops nil: parseFast never returns one (an empty array goes to
// encoding/json), and DeepEqual would tell them apart.
func normOps(m Msg) Msg {
	if len(m.Ops) == 0 {
		m.Ops = nil
	}
	return m
}

func TestParseFastTakesTheHotShapes(t *testing.T) {
	for _, s := range fastSeeds[:6] {
		if _, ok := parseFast([]byte(s)); !ok {
			t.Errorf("parseFast left %s to encoding/json", s)
		}
	}
}

func BenchmarkDecodeOp(b *testing.B) {
	frame := []byte(`{"t":"op","obj":"bench/x/p1","seq":12,"ops":[{"o":"set","f":"f3","v":"0123456789abcdef0123456789abcdef"}]}`)
	for _, bc := range []struct {
		name string
		fn   func([]byte) (Msg, *ProtoError)
	}{{"fast", Decode}, {"encoding_json", decodeJSON}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.fn(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
