package floorctl

import (
	"testing"
)

// takenMessage is the message a talk group sends most: Floor Taken to every listener.
func takenMessage() Message {
	m := Message{Subtype: FloorTaken, SSRC: serverSSRC}
	m.SetGrantedPartyID([]byte(alice))
	m.SetPermissionToRequest(true)
	m.SetSequenceNumber(7)
	m.SetFloorIndicator(IndicatorNormal | IndicatorQueueing)
	m.SetGrantedSSRC(participantSSRC)
	return m
}

// TestHotPathsDoNotAllocate pins the promise of MarshalTo and Unmarshal (and Scanner):
// no allocation per message, so a talk group's fan-out costs no garbage.
func TestHotPathsDoNotAllocate(t *testing.T) {
	m := takenMessage()
	buf := make([]byte, 256)
	n, err := m.MarshalTo(buf)
	if err != nil {
		t.Fatal(err)
	}
	wire := append([]byte(nil), buf[:n]...)
	var d Message
	cases := map[string]func(){
		"MarshalTo": func() { _, _ = m.MarshalTo(buf) },
		"Unmarshal": func() { _ = d.Unmarshal(wire) },
		"Scanner": func() {
			sc := NewScanner(wire)
			_ = sc.Next(&d)
		},
	}
	for name, fn := range cases {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %v allocations per run", name, a)
		}
	}
}

func BenchmarkMarshalTo(b *testing.B) {
	m := takenMessage()
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(int64(m.MarshalSize()))
	for b.Loop() {
		if _, err := m.MarshalTo(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	m := takenMessage()
	b.ReportAllocs()
	b.SetBytes(int64(m.MarshalSize()))
	for b.Loop() {
		if _, err := m.Marshal(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	src := takenMessage()
	wire, err := src.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if err := m.Unmarshal(wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalRequest is the server's hot input: a bare Floor Request.
func BenchmarkUnmarshalRequest(b *testing.B) {
	src := Message{Subtype: FloorRequest, SSRC: participantSSRC}
	src.SetFloorPriority(5)
	wire, _ := src.Marshal()
	var m Message
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if err := m.Unmarshal(wire); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCopyBaseline copies the bytes of the Floor Taken of BenchmarkMarshalTo: the
// floor under any codec, for the ratios in docs/push-to-talk.md.
func BenchmarkCopyBaseline(b *testing.B) {
	src := takenMessage()
	wire, _ := src.Marshal()
	buf := make([]byte, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		copy(buf, wire)
	}
}

// BenchmarkServerTalkBurst is one talk burst in a group of three, through the codec: a
// Floor Request decoded, the grant and two Floor Taken encoded, a Floor Release decoded,
// three Floor Idle encoded. It is the floor control work the demo server does per burst.
func BenchmarkServerTalkBurst(b *testing.B) {
	srv, _ := NewServer(Config{}, serverSSRC, nil)
	for _, id := range []string{"a", "b", "c"} {
		_, _ = srv.Join(Member{ID: id, UserID: "sip:" + id + "@example.com", Queueing: true})
	}
	req := Message{Subtype: FloorRequest, SSRC: participantSSRC}
	rel := Message{Subtype: FloorRelease, SSRC: participantSSRC}
	reqWire, _ := req.Marshal()
	relWire, _ := rel.Marshal()
	buf := make([]byte, 512)
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		for _, wire := range [][]byte{reqWire, relWire} {
			if err := m.Unmarshal(wire); err != nil {
				b.Fatal(err)
			}
			out, err := srv.Receive("a", &m)
			if err != nil {
				b.Fatal(err)
			}
			for i := range out {
				if _, err := out[i].Msg.MarshalTo(buf); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
