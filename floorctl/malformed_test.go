package floorctl

import (
	"bytes"
	"errors"
	"testing"
)

// malformed is the table of refused input: each entry is a datagram a broken or hostile
// peer could send and the sentinel Unmarshal must answer with.
func malformed() []struct {
	name string
	wire []string
	want error
} {
	return []struct {
		name string
		wire []string
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"eleven bytes", []string{"80cc0002", "11223344", "4d4350"}, ErrTruncated},
		{"RTCP version 1", []string{"40cc0002", "11223344", mcpt}, ErrBadVersion},
		{"RTCP version 0", []string{"00cc0002", "11223344", mcpt}, ErrBadVersion},
		{"receiver report", []string{"80c90002", "11223344", mcpt}, ErrNotApp},
		{"APP named PoC1 (OMA TBCP)", []string{"80cc0002", "11223344", "506f4331"}, ErrNotMCPT},
		{"APP named MCPC", []string{"80cc0002", "11223344", "4d435043"}, ErrNotMCPT},
		{"length says 20 bytes, 16 present", []string{"80cc0004", "11223344", mcpt, "00020500"}, ErrTruncated},
		{"length 65535", []string{"80ccffff", "11223344", mcpt}, ErrTruncated},
		{"four bytes after the message", []string{"80cc0002", "11223344", mcpt, "00020500"}, ErrLength},
		{"length field shorter than the header", []string{"80cc0001", "11223344", mcpt}, ErrLength},
		{"padding bit, padding count 0", []string{"a0cc0003", "11223344", mcpt, "00000000"}, ErrBadPadding},
		{"padding bit, count beyond the body", []string{"a0cc0003", "11223344", mcpt, "00000009"}, ErrBadPadding},
		{"padding bit, empty body", []string{"a0cc0002", "11223344", mcpt}, ErrBadPadding},
		{"subtype 00111", []string{"87cc0002", "11223344", mcpt}, ErrUnknownSubtype},
		{"subtype 01111 (multi-talker release)", []string{"8fcc0002", "11223344", mcpt}, ErrUnknownSubtype},
		{"subtype 01011", []string{"8bcc0002", "11223344", mcpt}, ErrUnknownSubtype},
		{"ack bit on a floor request", []string{"90cc0002", "11223344", mcpt}, ErrUnknownSubtype},
		{"ack bit on a floor revoke", []string{"96cc0003", "aabbccdd", mcpt, "02020002"}, ErrUnknownSubtype},
		{"ack bit on a floor ack", []string{"9acc0004", "11223344", mcpt, "0a020000", "0c020100"}, ErrUnknownSubtype},
		{"floor deny without reject cause", []string{"83cc0002", "aabbccdd", mcpt}, ErrMissingField},
		{"floor revoke without reject cause", []string{"86cc0003", "aabbccdd", mcpt, "0d028000"}, ErrMissingField},
		{"floor idle without sequence number", []string{"85cc0003", "aabbccdd", mcpt, "0d028000"}, ErrMissingField},
		{"floor taken without sequence number", []string{"82cc0003", "aabbccdd", mcpt, "05020001"}, ErrMissingField},
		{"floor granted without duration", []string{"81cc0003", "aabbccdd", mcpt, "00020500"}, ErrMissingField},
		{"queue position info without queue info", []string{"89cc0002", "aabbccdd", mcpt}, ErrMissingField},
		{"floor ack without message type", []string{"8acc0003", "11223344", mcpt, "0a020000"}, ErrMissingField},
		{"field length past the end", []string{"80cc0003", "11223344", mcpt, "00080500"}, ErrFieldTruncated},
		{"text length past the end", []string{"84cc0003", "11223344", mcpt, "06046162"}, ErrFieldTruncated},
		{"two-octet length past the end", []string{"80cc0003", "11223344", mcpt, "c8001000"}, ErrFieldTruncated},
		{"padding of the last field missing", []string{"a0cc0004", "11223344", mcpt, "06016100", "00000002"}, ErrFieldTruncated},
		{"floor priority of length 1", []string{"80cc0003", "11223344", mcpt, "00010500"}, ErrFieldLength},
		{"duration of length 4", []string{"81cc0004", "aabbccdd", mcpt, "01040000", "001e0000"}, ErrFieldLength},
		{"SSRC of length 4", []string{"82cc0004", "aabbccdd", mcpt, "0e041122", "33440000"}, ErrFieldLength},
		{"reject cause of length 1", []string{"83cc0003", "aabbccdd", mcpt, "02010100"}, ErrFieldLength},
		{"reject cause of length 0", []string{"83cc0003", "aabbccdd", mcpt, "02000000"}, ErrFieldLength},
		{"queue info of length 0", []string{"89cc0003", "aabbccdd", mcpt, "03000000"}, ErrFieldLength},
		{"permission to request 2", []string{"82cc0004", "aabbccdd", mcpt, "05020002", "08020001"}, ErrFieldValue},
		{"message type 00111", []string{"8acc0004", "11223344", mcpt, "0a020000", "0c020700"}, ErrFieldValue},
		{"message type 64", []string{"8acc0004", "11223344", mcpt, "0a020000", "0c024000"}, ErrFieldValue},
		{"user ID not UTF-8", []string{"84cc0003", "11223344", mcpt, "0602fffe"}, ErrFieldValue},
		{"granted party with a NUL inside", []string{"82cc0005", "aabbccdd", mcpt, "04036100", "62000000", "08020001"}, ErrFieldValue},
		{"reject phrase not UTF-8", []string{"83cc0004", "aabbccdd", mcpt, "02040001", "c3280000"}, ErrFieldValue},
	}
}

func TestUnmarshalRefusesMalformed(t *testing.T) {
	for _, tt := range malformed() {
		t.Run(tt.name, func(t *testing.T) {
			// A message decoded before must survive a refused one untouched only in the
			// caller's hands: Unmarshal overwrites m, so the caller decodes into scratch.
			var m Message
			err := m.Unmarshal(h(t, tt.wire...))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unmarshal error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMarshalRefuses(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 256)
	tests := []struct {
		name string
		msg  func() Message
		want error
	}{
		{"unknown subtype", func() Message { return Message{Subtype: 7} }, ErrUnknownSubtype},
		{"subtype out of range", func() Message { return Message{Subtype: 40} }, ErrUnknownSubtype},
		{"ack bit on a request", func() Message { return Message{Subtype: FloorRequest, AckRequired: true} }, ErrUnknownSubtype},
		{"ack bit on a revoke", func() Message {
			m := Message{Subtype: FloorRevoke, AckRequired: true}
			m.SetRejectCause(1, nil)
			return m
		}, ErrUnknownSubtype},
		{"duration on a request", func() Message {
			m := Message{Subtype: FloorRequest}
			m.SetDuration(3)
			return m
		}, ErrFieldNotAllowed},
		{"deny without cause", func() Message { return Message{Subtype: FloorDeny} }, ErrMissingField},
		{"granted without duration", func() Message { return Message{Subtype: FloorGranted} }, ErrMissingField},
		{"ack without message type", func() Message {
			m := Message{Subtype: FloorAck}
			m.SetSource(SourceParticipant)
			return m
		}, ErrMissingField},
		{"user ID of 256 bytes", func() Message {
			m := Message{Subtype: FloorRelease}
			m.SetUserID(long)
			return m
		}, ErrFieldTooLong},
		{"reject phrase of 254 bytes", func() Message {
			m := Message{Subtype: FloorDeny}
			m.SetRejectCause(1, long[:254])
			return m
		}, ErrFieldTooLong},
		{"ack of an unknown message type", func() Message {
			m := Message{Subtype: FloorAck}
			m.SetSource(SourceParticipant)
			m.SetMessageType(7)
			return m
		}, ErrFieldValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg()
			if _, err := m.Marshal(); !errors.Is(err, tt.want) {
				t.Fatalf("Marshal error %v, want %v", err, tt.want)
			}
			if _, err := m.MarshalTo(make([]byte, 2048)); !errors.Is(err, tt.want) {
				t.Fatalf("MarshalTo error %v, want %v", err, tt.want)
			}
		})
	}
	m := Message{Subtype: FloorRequest}
	m.SetFloorPriority(1)
	if _, err := m.MarshalTo(make([]byte, 15)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("MarshalTo into 15 bytes: %v", err)
	}
	m.SetUserID(long[:255])
	if _, err := m.Marshal(); err != nil {
		t.Fatalf("255-byte user ID: %v", err)
	}
}

// TestMalformedChangesNothing feeds every malformed message of the table to a participant
// and a server in the middle of a talk burst: each is refused and neither state moves.
func TestMalformedChangesNothing(t *testing.T) {
	clk := newFakeClock()
	srv, _ := NewServer(Config{}, serverSSRC, clk.now)
	for _, id := range []string{"a", "b"} {
		if _, err := srv.Join(Member{ID: id, UserID: id, Queueing: true}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := srv.Receive("a", &Message{Subtype: FloorRequest}); err != nil {
		t.Fatal(err)
	}
	part, _ := NewParticipant(Config{}, participantSSRC, 0, clk.now)
	part.Request()
	granted := Message{Subtype: FloorGranted, SSRC: serverSSRC}
	granted.SetDuration(30)
	part.Receive(&granted)

	srvBefore, partBefore, stateBefore := srv.Status(), part.View(), part.State()
	for _, tt := range malformed() {
		// In a datagram, bytes after a message are the next packet: that entry holds a
		// valid Floor Request, which the server rightly takes.
		if len(tt.wire) == 0 || errors.Is(tt.want, ErrLength) && tt.name == "four bytes after the message" {
			continue
		}
		// Other RTCP and other applications' APP packets are skipped without an error.
		silent := errors.Is(tt.want, ErrNotApp) || errors.Is(tt.want, ErrNotMCPT)
		wire := h(t, tt.wire...)
		out, err := part.ReceiveDatagram(wire)
		if (err == nil) != silent || len(out) != 0 {
			t.Errorf("%s: participant: %v %v", tt.name, out, err)
		}
		sout, err := srv.ReceiveDatagram("b", wire)
		if (err == nil) != silent || len(sout) != 0 {
			t.Errorf("%s: server: %v %v", tt.name, sout, err)
		}
	}
	if st := srv.Status(); st.Holder != srvBefore.Holder || len(st.Queue) != 0 || st.Revoke {
		t.Fatalf("server moved: %+v → %+v", srvBefore, st)
	}
	if part.View() != partBefore || part.State() != stateBefore {
		t.Fatalf("participant moved: %+v → %+v", partBefore, part.View())
	}

	// A datagram with a broken message between two good ones: the good ones count.
	idle := h(t, "85cc0003", "aabbccdd", mcpt, "08020009")
	broken := h(t, "83cc0002", "aabbccdd", mcpt)
	out, err := part.ReceiveDatagram(bytes.Join([][]byte{broken, idle}, nil))
	if !errors.Is(err, ErrMissingField) || len(out) != 0 || part.View().Floor != FloorIsIdle {
		t.Fatalf("mixed datagram: %v %v %+v", out, err, part.View())
	}
	if _, err := srv.ReceiveDatagram("z", h(t, "84cc0002", "11223344", mcpt)); !errors.Is(err, ErrUnknownParticipant) {
		t.Fatalf("unknown sender: %v", err)
	}
}
