package floorctl

import "fmt"

// Subtype is the five-bit RTCP APP subtype of a floor control message (TS 24.380 Table
// 8.2.2-1) with the acknowledgement bit cleared; Message.AckRequired carries that bit.
type Subtype uint8

// The floor control messages of TS 24.380 section 8.2 a talk group needs. The table writes
// the first bit of some as "x": it is the acknowledgement bit (ackBit).
const (
	FloorRequest              Subtype = 0b00000 // participant → server, §8.2.4
	FloorGranted              Subtype = 0b00001 // server → requester, §8.2.5 (x0001)
	FloorTaken                Subtype = 0b00010 // server → others, §8.2.9 (x0010)
	FloorDeny                 Subtype = 0b00011 // server → requester, §8.2.6 (x0011)
	FloorRelease              Subtype = 0b00100 // participant → server, §8.2.7 (x0100)
	FloorIdle                 Subtype = 0b00101 // server → all, §8.2.8 (x0101)
	FloorRevoke               Subtype = 0b00110 // server → holder, §8.2.10
	FloorQueuePositionRequest Subtype = 0b01000 // participant → server, §8.2.11
	FloorQueuePositionInfo    Subtype = 0b01001 // server → queued, §8.2.12 (x1001)
	FloorAck                  Subtype = 0b01010 // either way, §8.2.13
)

// ackBit is the first of the five subtype bits: '1' asks the receiver for a Floor Ack.
const ackBit = 0b10000

// ackable reports whether the subtype has the "x" acknowledgement bit in Table 8.2.2-1.
func (s Subtype) ackable() bool {
	switch s {
	case FloorGranted, FloorTaken, FloorDeny, FloorRelease, FloorIdle, FloorQueuePositionInfo:
		return true
	}
	return false
}

// String returns the message name of the specification.
func (s Subtype) String() string {
	switch s {
	case FloorRequest:
		return "Floor Request"
	case FloorGranted:
		return "Floor Granted"
	case FloorTaken:
		return "Floor Taken"
	case FloorDeny:
		return "Floor Deny"
	case FloorRelease:
		return "Floor Release"
	case FloorIdle:
		return "Floor Idle"
	case FloorRevoke:
		return "Floor Revoke"
	case FloorQueuePositionRequest:
		return "Floor Queue Position Request"
	case FloorQueuePositionInfo:
		return "Floor Queue Position Info"
	case FloorAck:
		return "Floor Ack"
	}
	return fmt.Sprintf("subtype %05b", uint8(s))
}

// Field is a floor control specific field ID (TS 24.380 Table 8.2.3.1-2).
type Field uint8

// The field IDs this package decodes. Track Info (11) is recognised but kept opaque: it
// only travels between the participating, controlling and non-controlling MCPTT functions.
const (
	FieldFloorPriority       Field = 0  // §8.2.3.2
	FieldDuration            Field = 1  // §8.2.3.3
	FieldRejectCause         Field = 2  // §8.2.3.4
	FieldQueueInfo           Field = 3  // §8.2.3.5
	FieldGrantedPartyID      Field = 4  // §8.2.3.6
	FieldPermissionToRequest Field = 5  // §8.2.3.7
	FieldUserID              Field = 6  // §8.2.3.8
	FieldQueueSize           Field = 7  // §8.2.3.9
	FieldSequenceNumber      Field = 8  // §8.2.3.10
	FieldQueuedUserID        Field = 9  // §8.2.3.11
	FieldSource              Field = 10 // §8.2.3.12
	FieldTrackInfo           Field = 11 // §8.2.3.13, skipped
	FieldMessageType         Field = 12 // §8.2.3.14
	FieldFloorIndicator      Field = 13 // §8.2.3.15
	FieldSSRC                Field = 14 // §8.2.3.16
)

// FieldSet is a set of fields, one bit per field ID.
type FieldSet uint32

// Has reports whether f is in the set.
func (s FieldSet) Has(f Field) bool { return f < 32 && s&(1<<f) != 0 }

// With returns the set with f added.
func (s FieldSet) With(f Field) FieldSet { return s | 1<<f }

// fieldSet builds a set from a list (tables below).
func fieldSet(fs ...Field) FieldSet {
	var s FieldSet
	for _, f := range fs {
		s = s.With(f)
	}
	return s
}

// layout is the order a message's fields are written in (the figures of §8.2.4 to
// §8.2.13) and the fields it must carry.
type layout struct {
	order     []Field
	allowed   FieldSet
	mandatory FieldSet
}

func newLayout(mandatory []Field, order ...Field) layout {
	return layout{order: order, allowed: fieldSet(order...), mandatory: fieldSet(mandatory...)}
}

// layouts lists, per subtype, the fields of the on-network message figures. Fields the
// figures mark "off-network only" are kept where they are cheap (User ID, Queue Size,
// Queued User ID, SSRC) so a message from a peer that sends them still decodes in full.
// Floor Taken ends with the SSRC of the granted floor participant (Rel-14 onwards): the
// demo server sends it so a receiver can tell the talker's RTP stream.
var layouts = [32]layout{
	FloorRequest: newLayout(nil,
		FieldFloorPriority, FieldUserID, FieldFloorIndicator),
	FloorGranted: newLayout([]Field{FieldDuration},
		FieldDuration, FieldSSRC, FieldFloorPriority, FieldUserID, FieldQueueSize, FieldFloorIndicator),
	FloorDeny: newLayout([]Field{FieldRejectCause},
		FieldRejectCause, FieldUserID, FieldFloorIndicator),
	FloorRelease: newLayout(nil,
		FieldUserID, FieldFloorIndicator),
	FloorIdle: newLayout([]Field{FieldSequenceNumber},
		FieldSequenceNumber, FieldFloorIndicator),
	FloorTaken: newLayout([]Field{FieldSequenceNumber},
		FieldGrantedPartyID, FieldPermissionToRequest, FieldUserID, FieldSequenceNumber,
		FieldFloorIndicator, FieldSSRC),
	FloorRevoke: newLayout([]Field{FieldRejectCause},
		FieldRejectCause, FieldFloorIndicator),
	FloorQueuePositionRequest: newLayout(nil,
		FieldUserID),
	FloorQueuePositionInfo: newLayout([]Field{FieldQueueInfo},
		FieldUserID, FieldSSRC, FieldQueuedUserID, FieldQueueInfo, FieldFloorIndicator),
	FloorAck: newLayout([]Field{FieldSource, FieldMessageType},
		FieldSource, FieldMessageType),
}

// known reports whether the package implements the subtype.
func (s Subtype) known() bool { return s < 32 && len(layouts[s].order) > 0 }

// Message is one floor control message: the RTCP APP header and the floor control
// specific fields of TS 24.380 section 8.2.3. A field's value counts only when Fields
// has it; the Set methods set both. Text values (the []byte fields) alias the buffer given
// to Unmarshal, as pion/rtp's payload does: copy them to keep them past that buffer.
type Message struct {
	Subtype     Subtype
	AckRequired bool   // the "x" bit: the receiver answers with a Floor Ack
	SSRC        uint32 // sender's SSRC (participant or floor control server)
	Fields      FieldSet

	FloorPriority       uint8   // 0 lowest .. 255 highest
	Duration            uint16  // seconds the granted party may talk
	RejectCause         uint16  // see DenyCause*, RevokeCause*
	RejectPhrase        []byte  // optional text after the cause
	QueuePosition       uint8   // 1-based; QueuePositionNotQueued, QueuePositionUnknown
	QueuePriority       uint8   // priority of the queued request
	GrantedPartyID      []byte  // MCPTT ID (a URI) of the talker
	PermissionToRequest bool    // may the receiver request the floor
	UserID              []byte  // MCPTT ID of the sender (mostly off-network)
	QueueSize           uint16  // waiting requests (off-network)
	SequenceNumber      uint16  // Floor Idle and Floor Taken order, wraps at 65535
	QueuedUserID        []byte  // MCPTT ID of a queued participant
	Source              Source  // who sends a Floor Ack
	MessageType         Subtype // the acknowledged message (Floor Ack)
	FloorIndicator      Indicator
	GrantedSSRC         uint32 // the SSRC field: granted or queued participant's SSRC
}

// Has reports whether the message carries field f.
func (m *Message) Has(f Field) bool { return m.Fields.Has(f) }

// SetFloorPriority sets the Floor Priority field.
func (m *Message) SetFloorPriority(p uint8) {
	m.FloorPriority, m.Fields = p, m.Fields.With(FieldFloorPriority)
}

// SetDuration sets the Duration field in seconds.
func (m *Message) SetDuration(seconds uint16) {
	m.Duration, m.Fields = seconds, m.Fields.With(FieldDuration)
}

// SetRejectCause sets the Reject Cause field with an optional phrase.
func (m *Message) SetRejectCause(cause uint16, phrase []byte) {
	m.RejectCause, m.RejectPhrase, m.Fields = cause, phrase, m.Fields.With(FieldRejectCause)
}

// SetQueueInfo sets the Queue Info field.
func (m *Message) SetQueueInfo(position, priority uint8) {
	m.QueuePosition, m.QueuePriority, m.Fields = position, priority, m.Fields.With(FieldQueueInfo)
}

// SetGrantedPartyID sets the Granted Party's Identity field.
func (m *Message) SetGrantedPartyID(id []byte) {
	m.GrantedPartyID, m.Fields = id, m.Fields.With(FieldGrantedPartyID)
}

// SetPermissionToRequest sets the Permission to Request the Floor field.
func (m *Message) SetPermissionToRequest(ok bool) {
	m.PermissionToRequest, m.Fields = ok, m.Fields.With(FieldPermissionToRequest)
}

// SetUserID sets the User ID field.
func (m *Message) SetUserID(id []byte) { m.UserID, m.Fields = id, m.Fields.With(FieldUserID) }

// SetQueueSize sets the Queue Size field.
func (m *Message) SetQueueSize(n uint16) {
	m.QueueSize, m.Fields = n, m.Fields.With(FieldQueueSize)
}

// SetSequenceNumber sets the Message Sequence Number field.
func (m *Message) SetSequenceNumber(n uint16) {
	m.SequenceNumber, m.Fields = n, m.Fields.With(FieldSequenceNumber)
}

// SetQueuedUserID sets the Queued User ID field.
func (m *Message) SetQueuedUserID(id []byte) {
	m.QueuedUserID, m.Fields = id, m.Fields.With(FieldQueuedUserID)
}

// SetSource sets the Source field.
func (m *Message) SetSource(s Source) { m.Source, m.Fields = s, m.Fields.With(FieldSource) }

// SetMessageType sets the Message Type field (the message a Floor Ack acknowledges).
func (m *Message) SetMessageType(s Subtype) {
	m.MessageType, m.Fields = s, m.Fields.With(FieldMessageType)
}

// SetFloorIndicator sets the Floor Indicator field.
func (m *Message) SetFloorIndicator(i Indicator) {
	m.FloorIndicator, m.Fields = i, m.Fields.With(FieldFloorIndicator)
}

// SetGrantedSSRC sets the SSRC field (granted or queued floor participant).
func (m *Message) SetGrantedSSRC(ssrc uint32) {
	m.GrantedSSRC, m.Fields = ssrc, m.Fields.With(FieldSSRC)
}

// String summarises the message for logs: name, sender and the fields that matter most.
func (m *Message) String() string {
	s := fmt.Sprintf("%v ssrc=%08x", m.Subtype, m.SSRC)
	if m.AckRequired {
		s += " ack-required"
	}
	if m.Has(FieldRejectCause) {
		s += fmt.Sprintf(" cause=%d", m.RejectCause)
	}
	if m.Has(FieldGrantedPartyID) {
		s += fmt.Sprintf(" talker=%q", m.GrantedPartyID)
	}
	if m.Has(FieldQueueInfo) {
		s += fmt.Sprintf(" position=%d", m.QueuePosition)
	}
	if m.Has(FieldDuration) {
		s += fmt.Sprintf(" duration=%ds", m.Duration)
	}
	if m.Has(FieldSequenceNumber) {
		s += fmt.Sprintf(" seq=%d", m.SequenceNumber)
	}
	if m.Has(FieldMessageType) {
		s += fmt.Sprintf(" acks=%v", m.MessageType)
	}
	return s
}
