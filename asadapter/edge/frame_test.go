package edge

import (
	"bytes"
	"errors"
	"testing"
)

// frames feeds data to a Framer in chunks of the sizes given (cycled; 0 counts as 1) and
// returns the messages it emitted, and its error.
func frames(data []byte, sizes []byte) ([][]byte, error) {
	var f Framer
	var out [][]byte
	each := func(msg []byte, _ *Message) { out = append(out, append([]byte(nil), msg...)) }
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(sizes) > 0 {
			n = max(1, int(sizes[i%len(sizes)]))
		}
		n = min(n, len(data))
		if err := f.Feed(data[:n], each); err != nil {
			return out, err
		}
		data = data[n:]
	}
	return out, nil
}

func TestFramer(t *testing.T) {
	inv, bye, reg := readMsg(t, "invite.sip"), readMsg(t, "bye.sip"), readMsg(t, "register.sip")
	stream := bytes.Join([][]byte{[]byte("\r\n\r\n"), inv, bye, []byte("\r\n"), reg}, nil)
	for name, sizes := range map[string][]byte{"whole": nil, "bytewise": {1}, "odd": {7, 200, 3}} {
		t.Run(name, func(t *testing.T) {
			got, err := frames(stream, sizes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 || !bytes.Equal(got[0], inv) || !bytes.Equal(got[1], bye) || !bytes.Equal(got[2], reg) {
				t.Fatalf("framed %q", got)
			}
		})
	}
	var f Framer
	if err := f.Feed(inv[:100], func([]byte, *Message) { t.Fatal("emitted a partial message") }); err != nil || f.Pending() != 100 {
		t.Fatalf("partial: %v, %d pending", err, f.Pending())
	}
	if err := f.Feed(inv[100:], func([]byte, *Message) {}); err != nil || f.Pending() != 0 {
		t.Fatalf("rest: %v, %d pending (an idle connection holds nothing)", err, f.Pending())
	}

	noCL := bytes.Replace(bye, []byte("Content-Length: 0\r\n"), nil, 1)
	if _, err := frames(noCL, nil); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("no Content-Length on a stream: %v", err)
	}
	huge := append([]byte("OPTIONS sip:a@b SIP/2.0\r\nX: "), bytes.Repeat([]byte("a"), MaxMessage)...)
	if _, err := frames(huge, []byte{255}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("endless header section: %v", err)
	}
}

// FuzzFramer: whatever the stream and however it is cut into reads, the Framer emits the
// same messages as when it gets the stream in one piece, each one Scan accepts, and fails
// the same way; it never holds more than MaxMessage bytes.
func FuzzFramer(f *testing.F) {
	var all []byte
	for _, s := range seeds(f) {
		f.Add(s, []byte{3, 50})
		all = append(all, s...)
	}
	f.Add(all, []byte{1})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		whole, werr := frames(data, nil)
		cut, cerr := frames(data, sizes)
		if (werr == nil) != (cerr == nil) {
			t.Fatalf("whole: %v, cut: %v", werr, cerr)
		}
		if werr == nil && len(whole) != len(cut) {
			t.Fatalf("%d messages whole, %d cut", len(whole), len(cut))
		}
		for i := range min(len(whole), len(cut)) {
			if !bytes.Equal(whole[i], cut[i]) {
				t.Fatalf("message %d differs:\n%q\n%q", i, whole[i], cut[i])
			}
			var m Message
			if err := Scan(whole[i], &m); err != nil {
				t.Fatalf("emitted %q, which Scan refuses: %v", whole[i], err)
			}
		}
	})
}
