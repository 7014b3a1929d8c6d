package floorctl

import (
	"bytes"
	"io"
	"testing"
)

// seedCodec adds every vector, tolerated and malformed input to a fuzz corpus.
func seedCodec(f *testing.F) {
	for _, v := range vectors() {
		f.Add(h(f, v.wire...))
	}
	for _, m := range malformed() {
		f.Add(h(f, m.wire...))
	}
}

// FuzzUnmarshal checks that no input panics and that whatever Unmarshal accepts marshals
// again and decodes to the same message (Marshal writes the canonical form).
func FuzzUnmarshal(f *testing.F) {
	seedCodec(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if err := m.Unmarshal(b); err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("accepted %x, Marshal: %v", b, err)
		}
		if len(out) != m.MarshalSize() {
			t.Fatalf("Marshal wrote %d bytes, MarshalSize says %d", len(out), m.MarshalSize())
		}
		var again Message
		if err := again.Unmarshal(out); err != nil {
			t.Fatalf("re-decoding %x: %v", out, err)
		}
		if !sameMessage(&m, &again) {
			t.Fatalf("round trip changed %+v into %+v", m, again)
		}
		out2, _ := again.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatalf("not canonical: %x then %x", out, out2)
		}
	})
}

// FuzzScanner checks that walking any datagram ends, never panics, and yields only
// messages that marshal.
func FuzzScanner(f *testing.F) {
	seedCodec(f)
	f.Add(h(f, "80c90001", "11223344", "80cc0003", "11223344", mcpt, "00020500"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sc := NewScanner(b)
		var m Message
		for steps := 0; ; steps++ {
			if steps > len(b)/4+1 {
				t.Fatalf("scanner did not end after %d steps on %d bytes", steps, len(b))
			}
			err := sc.Next(&m)
			if err == io.EOF {
				return
			}
			if err == nil {
				if _, err := m.Marshal(); err != nil {
					t.Fatalf("scanned message does not marshal: %v", err)
				}
			}
		}
	})
}
