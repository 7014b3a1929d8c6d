package floorctl

import "strings"

// Reject Cause values of a Floor Deny (TS 24.380 §8.2.3.4, cause #1 to #7 and #255).
const (
	DenyCauseAnotherHasPermission uint16 = 1
	DenyCauseInternalError        uint16 = 2
	DenyCauseOnlyOneParticipant   uint16 = 3
	DenyCauseRetryAfter           uint16 = 4
	DenyCauseReceiveOnly          uint16 = 5
	DenyCauseNoResources          uint16 = 6
	DenyCauseQueueFull            uint16 = 7
	DenyCauseOther                uint16 = 255
)

// Reject Cause values of a Floor Revoke (TS 24.380 §8.2.3.4). The numbers mean other
// things than in a Floor Deny, so the two sets are kept apart.
const (
	RevokeCauseOnlyOneClient uint16 = 1
	RevokeCauseTooLong       uint16 = 2
	RevokeCauseNoPermission  uint16 = 3
	RevokeCausePreempted     uint16 = 4
	RevokeCauseNoResources   uint16 = 6
	RevokeCauseOther         uint16 = 255
)

// DenyReason is the text of a Floor Deny cause, for logs and the page.
func DenyReason(cause uint16) string {
	switch cause {
	case DenyCauseAnotherHasPermission:
		return "another participant has permission"
	case DenyCauseInternalError:
		return "internal floor control server error"
	case DenyCauseOnlyOneParticipant:
		return "only one participant"
	case DenyCauseRetryAfter:
		return "retry-after timer has not expired"
	case DenyCauseReceiveOnly:
		return "receive only"
	case DenyCauseNoResources:
		return "no resources available"
	case DenyCauseQueueFull:
		return "queue full"
	}
	return "other reason"
}

// RevokeReason is the text of a Floor Revoke cause.
func RevokeReason(cause uint16) string {
	switch cause {
	case RevokeCauseOnlyOneClient:
		return "only one participant"
	case RevokeCauseTooLong:
		return "talk burst too long"
	case RevokeCauseNoPermission:
		return "no permission to send media"
	case RevokeCausePreempted:
		return "talk burst pre-empted"
	case RevokeCauseNoResources:
		return "no resources available"
	}
	return "other reason"
}

// Queue Position Info values with a special meaning (TS 24.380 §8.2.3.5).
const (
	// QueuePositionNotQueued: the participant is not queued.
	QueuePositionNotQueued uint8 = 254
	// QueuePositionUnknown: queued, but the server cannot or will not tell where.
	QueuePositionUnknown uint8 = 255
)

// Source is the value of the Source field: who sends a Floor Ack (TS 24.380 §8.2.3.12).
type Source uint16

// The Source values; the others are reserved and decoded as they are.
const (
	SourceParticipant    Source = 0
	SourceParticipating  Source = 1
	SourceControlling    Source = 2
	SourceNonControlling Source = 3
)

// Indicator is the Floor Indicator bit map (TS 24.380 §8.2.3.15), bit A first.
type Indicator uint16

// The Floor Indicator bits. The reserved bits J to P decode as they are and are written
// back unchanged.
const (
	IndicatorNormal          Indicator = 1 << 15 // A: normal call
	IndicatorBroadcast       Indicator = 1 << 14 // B: broadcast group call
	IndicatorSystem          Indicator = 1 << 13 // C: system call
	IndicatorEmergency       Indicator = 1 << 12 // D: emergency call
	IndicatorImminentPeril   Indicator = 1 << 11 // E: imminent peril call
	IndicatorQueueing        Indicator = 1 << 10 // F: queueing supported
	IndicatorDualFloor       Indicator = 1 << 9  // G: dual floor
	IndicatorTemporaryGroup  Indicator = 1 << 8  // H: temporary group call
	IndicatorMultiTalker     Indicator = 1 << 7  // I: multi-talker
	indicatorNamedBitsMask   Indicator = 0xff80
	indicatorReservedBitMask Indicator = ^indicatorNamedBitsMask
)

// String lists the set bits by name, for logs.
func (i Indicator) String() string {
	names := []struct {
		bit  Indicator
		name string
	}{
		{IndicatorNormal, "normal"}, {IndicatorBroadcast, "broadcast"}, {IndicatorSystem, "system"},
		{IndicatorEmergency, "emergency"}, {IndicatorImminentPeril, "imminent-peril"},
		{IndicatorQueueing, "queueing"}, {IndicatorDualFloor, "dual-floor"},
		{IndicatorTemporaryGroup, "temporary-group"}, {IndicatorMultiTalker, "multi-talker"},
	}
	var parts []string
	for _, n := range names {
		if i&n.bit != 0 {
			parts = append(parts, n.name)
		}
	}
	if i&indicatorReservedBitMask != 0 {
		parts = append(parts, "reserved")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "|")
}
