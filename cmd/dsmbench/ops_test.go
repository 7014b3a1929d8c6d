package main

import (
	"strings"
	"testing"
)

func TestValueRoundTrip(t *testing.T) {
	for _, c := range []struct {
		idx, seq uint32
		ns       int64
	}{{0, 0, 0}, {9999, 123456, 20e9}, {1<<32 - 1, 1<<32 - 1, 1<<63 - 1}} {
		v := encodeValue(c.idx, c.seq, c.ns)
		if len(v) != valueLen {
			t.Fatalf("value %q is %d bytes", v, len(v))
		}
		idx, seq, ns, ok := decodeValue(v)
		if !ok || idx != c.idx || seq != c.seq || ns != c.ns {
			t.Fatalf("%q decoded to %d %d %d %v", v, idx, seq, ns, ok)
		}
	}
	for _, bad := range []string{"", strings.Repeat("-", valueLen), strings.Repeat("0", valueLen-1), strings.Repeat("A", valueLen)} {
		if _, _, _, ok := decodeValue(bad); ok {
			t.Errorf("%q decoded", bad)
		}
	}
}

// FuzzDecodeValue checks that any string decodes without panicking and that whatever
// decodes re-encodes to the same value.
func FuzzDecodeValue(f *testing.F) {
	f.Add(encodeValue(7, 42, 123456789))
	f.Add(strings.Repeat("-", valueLen))
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		idx, seq, ns, ok := decodeValue(v)
		if ok && encodeValue(idx, seq, ns) != v {
			t.Fatalf("%q decoded to %d %d %d, which encodes differently", v, idx, seq, ns)
		}
	})
}

func TestSubscriberCounts(t *testing.T) {
	for _, c := range []struct{ c, d, g int }{{20, 4, 10}, {50, 50, 10}, {23, 7, 10}, {10000, 10000, 10}, {5, 8, 3}} {
		b := &bench{o: options{c: c.c, d: c.d, g: c.g, run: "x"}}
		subs := map[string]int32{}
		for i := 0; i < c.c; i++ {
			subs[b.playerObj(i)]++
			subs[b.hotObj(i)]++
		}
		for i := 0; i < c.c; i++ {
			got := b.subscribers(i)
			if got[0] != subs[b.playerObj(i)] || got[1] != subs[b.hotObj(i)] {
				t.Fatalf("%+v client %d: subscribers %v, counted %d %d", c, i, got, subs[b.playerObj(i)], subs[b.hotObj(i)])
			}
		}
	}
}

func TestRecTable(t *testing.T) {
	var tb recTable
	for i := 0; i < 3*recChunk+5; i++ {
		r, seq := tb.add(int32(i % 7))
		if seq != uint32(i) || r.expect != int32(i%7) {
			t.Fatalf("add %d: seq %d expect %d", i, seq, r.expect)
		}
	}
	if tb.get(3*recChunk+5) != nil {
		t.Fatal("get past the end returned a record")
	}
	if r := tb.get(recChunk + 1); r == nil || r.expect != int32((recChunk+1)%7) {
		t.Fatal("get returned the wrong record")
	}
	n := 0
	tb.each(func(*opRec) { n++ })
	if n != 3*recChunk+5 {
		t.Fatalf("each visited %d", n)
	}
}
