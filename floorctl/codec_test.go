package floorctl

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// h decodes hex written in groups (spaces and | are ignored), so a vector reads like the
// figures of TS 24.380: one group per 32-bit word or field.
func h(t testing.TB, groups ...string) []byte {
	t.Helper()
	s := strings.NewReplacer(" ", "", "|", "").Replace(strings.Join(groups, ""))
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad test vector %q: %v", s, err)
	}
	return b
}

// The SSRCs and identity of the vectors.
const (
	participantSSRC = 0x11223344
	serverSSRC      = 0xaabbccdd
	alice           = "sip:alice@example.com" // 21 bytes: 73 69 70 3a 61 6c ...
)

// The common words of the vectors: the APP name, "MCPT" in ASCII (§8.1.2).
const mcpt = "4d435054"

// vector is a message and its bytes, each byte written from the field definitions of TS
// 24.380 §8.2.3 (field ID, 8-bit length, value, zero padding to 32 bits) and the APP
// header of §8.1.2 (V=2, P=0, subtype, PT=204, length in 32-bit words minus one).
type vector struct {
	name string
	msg  func() Message
	wire []string
}

func vectors() []vector {
	return []vector{
		{
			name: "floor request, priority 5",
			msg: func() Message {
				m := Message{Subtype: FloorRequest, SSRC: participantSSRC}
				m.SetFloorPriority(5)
				return m
			},
			// 80: V=2 P=0 subtype 00000; cc: APP; 0003: 16 bytes = 4 words - 1.
			// Floor Priority: ID 0, length 2, priority 5, spare.
			wire: []string{"80cc0003", "11223344", mcpt, "00 02 05 00"},
		},
		{
			name: "floor request, no field",
			msg:  func() Message { return Message{Subtype: FloorRequest, SSRC: participantSSRC} },
			wire: []string{"80cc0002", "11223344", mcpt},
		},
		{
			name: "floor granted, acknowledgement required",
			msg: func() Message {
				m := Message{Subtype: FloorGranted, AckRequired: true, SSRC: serverSSRC}
				m.SetDuration(30)
				m.SetFloorPriority(5)
				m.SetFloorIndicator(IndicatorNormal | IndicatorQueueing)
				return m
			},
			// 91: V=2, subtype x0001 with x=1. Duration: ID 1, 30 s. Floor Indicator: ID 13,
			// bits A (normal) and F (queueing) = 1000 0100 0000 0000.
			wire: []string{"91cc0005", "aabbccdd", mcpt, "01 02 001e", "00 02 05 00", "0d 02 8400"},
		},
		{
			name: "floor taken with identity, permission, sequence, SSRC",
			msg: func() Message {
				m := Message{Subtype: FloorTaken, SSRC: serverSSRC}
				m.SetGrantedPartyID([]byte(alice))
				m.SetPermissionToRequest(true)
				m.SetSequenceNumber(7)
				m.SetFloorIndicator(IndicatorNormal)
				m.SetGrantedSSRC(participantSSRC)
				return m
			},
			// Granted Party's Identity: ID 4, length 21, 21 bytes, 1 padding byte (2+21=23 → 24).
			// Permission: ID 5, value 1. Sequence: ID 8, value 7. SSRC: ID 14, length 6,
			// SSRC, 16 spare bits. 56 bytes = 14 words → 13.
			wire: []string{"82cc000d", "aabbccdd", mcpt,
				"04 15 7369 703a 616c 6963 6540 6578 616d 706c 652e 636f 6d 00",
				"05 02 0001", "08 02 0007", "0d 02 8000", "0e 06 11223344 0000"},
		},
		{
			name: "floor deny with phrase",
			msg: func() Message {
				m := Message{Subtype: FloorDeny, SSRC: serverSSRC}
				m.SetRejectCause(DenyCauseAnotherHasPermission, []byte("busy"))
				return m
			},
			// Reject Cause: ID 2, length 2+4, cause 1, "busy"; 8 bytes, no padding.
			wire: []string{"83cc0004", "aabbccdd", mcpt, "02 06 0001 62757379"},
		},
		{
			name: "floor deny, queue full, phrase padded",
			msg: func() Message {
				m := Message{Subtype: FloorDeny, SSRC: serverSSRC}
				m.SetRejectCause(DenyCauseQueueFull, []byte("full!"))
				return m
			},
			// length 2+5=7: 2+7 = 9 bytes, padded to 12.
			wire: []string{"83cc0005", "aabbccdd", mcpt, "02 07 0007 66756c6c21 000000"},
		},
		{
			name: "floor release, acknowledgement required",
			msg:  func() Message { return Message{Subtype: FloorRelease, AckRequired: true, SSRC: participantSSRC} },
			// 94: subtype x0100 with x=1.
			wire: []string{"94cc0002", "11223344", mcpt},
		},
		{
			name: "floor release with user ID",
			msg: func() Message {
				m := Message{Subtype: FloorRelease, SSRC: participantSSRC}
				m.SetUserID([]byte("sip:b@x"))
				return m
			},
			// User ID: ID 6, length 7, 7 bytes, 3 padding bytes (2+7=9 → 12).
			wire: []string{"84cc0005", "11223344", mcpt, "06 07 7369703a624078 000000"},
		},
		{
			name: "floor idle",
			msg: func() Message {
				m := Message{Subtype: FloorIdle, SSRC: serverSSRC}
				m.SetSequenceNumber(8)
				m.SetFloorIndicator(IndicatorNormal)
				return m
			},
			wire: []string{"85cc0004", "aabbccdd", mcpt, "08 02 0008", "0d 02 8000"},
		},
		{
			name: "floor revoke, talk burst too long",
			msg: func() Message {
				m := Message{Subtype: FloorRevoke, SSRC: serverSSRC}
				m.SetRejectCause(RevokeCauseTooLong, nil)
				return m
			},
			wire: []string{"86cc0003", "aabbccdd", mcpt, "02 02 0002"},
		},
		{
			name: "floor queue position request",
			msg:  func() Message { return Message{Subtype: FloorQueuePositionRequest, SSRC: participantSSRC} },
			wire: []string{"88cc0002", "11223344", mcpt},
		},
		{
			name: "floor queue position info",
			msg: func() Message {
				m := Message{Subtype: FloorQueuePositionInfo, SSRC: serverSSRC}
				m.SetQueueInfo(2, 5)
				m.SetFloorIndicator(IndicatorNormal | IndicatorQueueing)
				return m
			},
			// Queue Info: ID 3, position 2, priority 5.
			wire: []string{"89cc0004", "aabbccdd", mcpt, "03 02 02 05", "0d 02 8400"},
		},
		{
			name: "floor queue position info, not queued, ack required",
			msg: func() Message {
				m := Message{Subtype: FloorQueuePositionInfo, AckRequired: true, SSRC: serverSSRC}
				m.SetQueueInfo(QueuePositionNotQueued, 0)
				return m
			},
			wire: []string{"99cc0003", "aabbccdd", mcpt, "03 02 fe 00"},
		},
		{
			name: "floor ack of a floor granted",
			msg: func() Message {
				m := Message{Subtype: FloorAck, SSRC: participantSSRC}
				m.SetSource(SourceParticipant)
				m.SetMessageType(FloorGranted)
				return m
			},
			// Source: ID 10, value 0. Message Type: ID 12, 00001, spare.
			wire: []string{"8acc0004", "11223344", mcpt, "0a 02 0000", "0c 02 01 00"},
		},
		{
			name: "floor granted with the SSRC and the user ID of the granted party",
			msg: func() Message {
				m := Message{Subtype: FloorGranted, SSRC: serverSSRC}
				m.SetDuration(300)
				m.SetGrantedSSRC(participantSSRC)
				m.SetUserID([]byte("ab"))
				m.SetQueueSize(3)
				return m
			},
			// Order of §8.2.5: Duration, SSRC, Floor Priority, User ID, Queue Size.
			wire: []string{"81cc0007", "aabbccdd", mcpt, "01 02 012c", "0e 06 11223344 0000",
				"06 02 6162", "07 02 0003"},
		},
	}
}

func TestMarshalVectors(t *testing.T) {
	for _, v := range vectors() {
		t.Run(v.name, func(t *testing.T) {
			want := h(t, v.wire...)
			m := v.msg()
			got, err := m.Marshal()
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal\n got %x\nwant %x", got, want)
			}
			if n := m.MarshalSize(); n != len(want) {
				t.Errorf("MarshalSize = %d, want %d", n, len(want))
			}
			buf := make([]byte, len(want)+7)
			n, err := m.MarshalTo(buf)
			if err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("MarshalTo = %x, %v", buf[:n], err)
			}
		})
	}
}

func TestUnmarshalVectors(t *testing.T) {
	for _, v := range vectors() {
		t.Run(v.name, func(t *testing.T) {
			var got Message
			if err := got.Unmarshal(h(t, v.wire...)); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			want := v.msg()
			if !sameMessage(&got, &want) {
				t.Fatalf("Unmarshal\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestRoundTrip marshals every vector, decodes it and marshals it again.
func TestRoundTrip(t *testing.T) {
	for _, v := range vectors() {
		m := v.msg()
		b1, err := m.Marshal()
		if err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		var d Message
		if err := d.Unmarshal(b1); err != nil {
			t.Fatalf("%s: %v", v.name, err)
		}
		b2, err := d.Marshal()
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("%s: round trip %x → %x, %v", v.name, b1, b2, err)
		}
	}
}

// sameMessage compares two messages field by field; text values compare by content
// (nil and empty are the same).
func sameMessage(a, b *Message) bool {
	norm := func(m Message) Message {
		for _, p := range []*[]byte{&m.RejectPhrase, &m.GrantedPartyID, &m.UserID, &m.QueuedUserID} {
			if len(*p) == 0 {
				*p = nil
			}
		}
		return m
	}
	return reflect.DeepEqual(norm(*a), norm(*b))
}

// TestUnmarshalTolerates covers input a peer may send that the package reads without
// writing it back the same way: unknown fields, Track Info, fields a message does not
// define, repeats, trailing NULs, RTCP padding, the acknowledgement bit in Message Type.
func TestUnmarshalTolerates(t *testing.T) {
	tests := []struct {
		name  string
		wire  []string
		check func(*Message) bool
	}{
		{
			name:  "unknown field ID 100 before the priority",
			wire:  []string{"80cc0005", "11223344", mcpt, "64 03 aabbcc 000000", "00 02 07 00"},
			check: func(m *Message) bool { return m.Has(FieldFloorPriority) && m.FloorPriority == 7 },
		},
		{
			name:  "field ID 200 with a two-octet length",
			wire:  []string{"80cc0005", "11223344", mcpt, "c8 0002 aabb 000000", "00 02 07 00"},
			check: func(m *Message) bool { return m.FloorPriority == 7 && m.Fields == fieldSet(FieldFloorPriority) },
		},
		{
			name:  "track info skipped",
			wire:  []string{"85cc0005", "aabbccdd", mcpt, "0b 02 0100", "08 02 0009", "0d 02 8000"},
			check: func(m *Message) bool { return m.SequenceNumber == 9 && !m.Has(FieldTrackInfo) },
		},
		{
			name:  "duration in a floor request skipped",
			wire:  []string{"80cc0003", "11223344", mcpt, "01 02 001e"},
			check: func(m *Message) bool { return m.Fields == 0 },
		},
		{
			name:  "repeated priority keeps the first",
			wire:  []string{"80cc0004", "11223344", mcpt, "00 02 05 00", "00 02 09 00"},
			check: func(m *Message) bool { return m.FloorPriority == 5 },
		},
		{
			name: "floor ack with the acknowledgement bit in Message Type",
			wire: []string{"8acc0004", "11223344", mcpt, "0a 02 0000", "0c 02 12 00"},
			check: func(m *Message) bool {
				return m.MessageType == FloorTaken && m.Source == SourceParticipant
			},
		},
		{
			name:  "user ID with trailing NULs",
			wire:  []string{"84cc0004", "11223344", mcpt, "06 04 6162 0000 0000"},
			check: func(m *Message) bool { return string(m.UserID) == "ab" },
		},
		{
			name:  "RTCP padding",
			wire:  []string{"a0cc0004", "11223344", mcpt, "00 02 05 00", "00000004"},
			check: func(m *Message) bool { return m.FloorPriority == 5 },
		},
		{
			name:  "non-zero padding bytes ignored",
			wire:  []string{"84cc0003", "11223344", mcpt, "06 01 61 ff"},
			check: func(m *Message) bool { return string(m.UserID) == "a" },
		},
		{
			name:  "reserved source value kept, zero word skipped",
			wire:  []string{"8acc0005", "11223344", mcpt, "0a 02 0009", "0c 02 05 00", "00000000"},
			check: func(m *Message) bool { return m.Source == 9 && m.MessageType == FloorIdle },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			if err := m.Unmarshal(h(t, tt.wire...)); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if !tt.check(&m) {
				t.Fatalf("decoded %+v", m)
			}
			if _, err := m.Marshal(); err != nil {
				t.Fatalf("decoded message does not marshal: %v", err)
			}
		})
	}
}
