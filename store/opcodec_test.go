package store

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseOps holds ParseOps's fast path to encoding/json: whatever it takes,
// json.Unmarshal takes too and yields the same elements.
func FuzzParseOps(f *testing.F) {
	for _, s := range []string{
		`[{"o":"set","f":"f3","v":"0123456789abcdef0123456789abcdef"}]`,
		`[{"o":"set","f":"a","v":"é"},{"o":"del","f":"x","v":"y"},{"o":"expect","f":"y"},{"f":"z","o":"expect","v":""}]`,
		` [ { "o" : "del" , "f" : "x" } ] `, `[{"o":"set","f":"a\n","v":"\u00e9"}]`, `[]`, `[null]`,
		`[{"o":"set","f":"a"}]`, `[{"o":"set","o":"del","f":"a"}]`, "[{\"o\":\"set\",\"f\":\"\xff\",\"v\":\"\"}]",
		`[{"O":"set","f":"a","v":"b"}]`, `[{"o":"set","f":"a","v":"b"}] x`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ops, ok := parseOpsFast(s)
		if !ok {
			return
		}
		var want []Op
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("parseOpsFast took %q, which encoding/json refuses: %v", s, err)
		}
		if !reflect.DeepEqual(ops, want) {
			t.Fatalf("parseOpsFast(%q) = %+v, encoding/json %+v", s, ops, want)
		}
	})
}

// FuzzAppendOps checks that AppendOps writes what decodes, through encoding/json, to the
// same elements json.Marshal's output does.
func FuzzAppendOps(f *testing.F) {
	f.Add("f", "v", uint8(0))
	f.Add("a<b>&", "\u2028\"\\\x01é", uint8(1))
	f.Add("x", "", uint8(2))
	f.Fuzz(func(t *testing.T, field, value string, kind uint8) {
		ops := []Op{Set(field, value), Del(field), Expect(field, value), ExpectAbsent(field)}[kind%4:]
		std, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		var want, got []Op
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(AppendOps(nil, ops), &got); err != nil {
			t.Fatalf("AppendOps wrote %q: %v", AppendOps(nil, ops), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendOps %+v, json.Marshal %+v", got, want)
		}
	})
}

func BenchmarkOpsCodec(b *testing.B) {
	ops := []Op{Set("f3", "0123456789abcdef0123456789abcdef")}
	enc := string(AppendOps(nil, ops))
	b.Run("parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseOps(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var got []Op
			if err := json.Unmarshal([]byte(enc), &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = AppendOps(make([]byte, 0, 128), Writes(ops))
		}
	})
	b.Run("append_json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(Writes(ops)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
