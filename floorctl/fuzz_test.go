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

// FuzzReceiveDatagram feeds any datagram to a participant and to a server in the middle
// of a talk burst: nothing panics and every answer is a message the codec accepts.
func FuzzReceiveDatagram(f *testing.F) {
	seedCodec(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		clk := newFakeClock()
		srv, _ := NewServer(Config{}, serverSSRC, clk.now)
		for _, id := range []string{"a", "b", "c"} {
			_, _ = srv.Join(Member{ID: id, UserID: id, Queueing: true, MaxPriority: 9})
		}
		_, _ = srv.Receive("a", &Message{Subtype: FloorRequest})
		part, _ := NewParticipant(Config{}, participantSSRC, 3, clk.now)
		part.Request()
		out, _ := part.ReceiveDatagram(b)
		for _, m := range out {
			if _, err := m.Marshal(); err != nil {
				t.Fatalf("participant answer %v: %v", m.Subtype, err)
			}
		}
		sout, _ := srv.ReceiveDatagram("b", b)
		for _, o := range sout {
			if _, err := o.Msg.Marshal(); err != nil {
				t.Fatalf("server answer %v: %v", o.Msg.Subtype, err)
			}
		}
	})
}
