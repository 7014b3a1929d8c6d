package mediagw

import "time"

// AddLocalRequest is the body of POST /v1/terminations.
type AddLocalRequest struct {
	// Owner names who is responsible for the termination (an AS adapter instance or
	// cluster); List filters on it.
	Owner string `json:"owner"`
	// CallID is the SIP Call-ID, carried in logs and events (never in metric labels).
	CallID string `json:"call_id,omitempty"`
	// Player is the DSM player address, carried in logs and events.
	Player string `json:"player,omitempty"`
	// EventURL receives signed events (media timeout ...) by POST; empty: none.
	EventURL string `json:"event_url,omitempty"`
	// Gated makes a push-to-talk termination: the browser's RTP reaches the far end only
	// while its gate is open (ModifyRequest.GateOpen, set by the owner as the floor is
	// granted and released). The gate starts closed and closes by itself when the
	// browser's WebSocket detaches, which the owner hears as EventDetached.
	Gated bool `json:"gated,omitempty"`
}

// LocalTermination is the answer to AddLocal: what to put in the SDP offer.
type LocalTermination struct {
	ID       string `json:"id"`
	Address  string `json:"address"`
	RTPPort  int    `json:"rtp_port"`
	RTCPPort int    `json:"rtcp_port"`
}

// PayloadType is one negotiated RTP payload type (an SDP a=rtpmap).
type PayloadType struct {
	PT        uint8  `json:"pt"`
	Name      string `json:"name"`
	ClockRate uint32 `json:"clock_rate"`
}

// Remote is the far end's media address and the negotiated payload types.
type Remote struct {
	Address string `json:"address"`
	RTPPort int    `json:"rtp_port"`
	// RTCPPort 0 means RTPPort+1; equal to RTPPort means rtcp-mux.
	RTCPPort     int           `json:"rtcp_port"`
	PayloadTypes []PayloadType `json:"payload_types"`
}

// MediaURL is the answer to AddRemote and NewURL: where the browser attaches.
type MediaURL struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
}

// ModifyRequest is the body of PATCH /v1/terminations/{id}; nil fields are unchanged.
// Address, RTPPort and RTCPPort change the remote address (a re-INVITE) and reset
// latching.
type ModifyRequest struct {
	Hold *bool `json:"hold,omitempty"`
	// GateOpen opens (true) or closes (false) the gate of a Gated termination; on
	// another termination it is a conflict. It may change before the remote is added.
	GateOpen     *bool         `json:"gate_open,omitempty"`
	Address      *string       `json:"address,omitempty"`
	RTPPort      *int          `json:"rtp_port,omitempty"`
	RTCPPort     *int          `json:"rtcp_port,omitempty"`
	PayloadTypes []PayloadType `json:"payload_types,omitempty"`
}

// DTMFRequest is the body of POST /v1/terminations/{id}/dtmf.
type DTMFRequest struct {
	// Digits are 1-64 of 0-9 * # A-D.
	Digits string `json:"digits"`
	// DurationMS per digit, default 100, 40-5000.
	DurationMS int `json:"duration_ms,omitempty"`
	// GapMS between digits, default 60, 0-5000.
	GapMS int `json:"gap_ms,omitempty"`
}

// Termination is one termination as GET and List return it.
type Termination struct {
	ID           string    `json:"id"`
	Owner        string    `json:"owner"`
	CallID       string    `json:"call_id,omitempty"`
	Player       string    `json:"player,omitempty"`
	Address      string    `json:"address"`
	RTPPort      int       `json:"rtp_port"`
	RTCPPort     int       `json:"rtcp_port"`
	Remote       *Remote   `json:"remote,omitempty"`
	LatchedRTP   string    `json:"latched_rtp,omitempty"`
	LatchedRTCP  string    `json:"latched_rtcp,omitempty"`
	Hold         bool      `json:"hold"`
	Gated        bool      `json:"gated,omitempty"`
	GateOpen     bool      `json:"gate_open,omitempty"`
	WSAttached   bool      `json:"ws_attached"`
	CreatedAt    time.Time `json:"created_at"`
	LastPacketAt time.Time `json:"last_packet_at,omitzero"`
	Counters     Counters  `json:"counters"`
}

// Counters are the per-termination counters.
type Counters struct {
	WSToUDP      Flow              `json:"ws_to_udp"`
	UDPToWS      Flow              `json:"udp_to_ws"`
	Drops        map[string]uint64 `json:"drops"`
	DTMFPackets  uint64            `json:"dtmf_packets"`
	FromUDP      *ReceiveStats     `json:"from_udp,omitempty"`
	FromWS       *ReceiveStats     `json:"from_ws,omitempty"`
	RemoteReport *RemoteReport     `json:"remote_report,omitempty"`
}

// Flow counts packets relayed in one direction.
type Flow struct {
	RTPPackets  uint64 `json:"rtp_packets"`
	RTPBytes    uint64 `json:"rtp_bytes"`
	RTCPPackets uint64 `json:"rtcp_packets"`
	RTCPBytes   uint64 `json:"rtcp_bytes"`
}

// ReceiveStats are RFC 3550 receive statistics of the main SSRC of one direction.
type ReceiveStats struct {
	SSRC     uint32  `json:"ssrc"`
	Received uint64  `json:"received"`
	Expected uint64  `json:"expected"`
	Lost     int64   `json:"lost"`
	JitterMS float64 `json:"jitter_ms"`
}

// RemoteReport is the last RTCP report block the far end sent about our stream.
type RemoteReport struct {
	FractionLost   float64 `json:"fraction_lost"`
	CumulativeLost int32   `json:"cumulative_lost"`
	JitterMS       float64 `json:"jitter_ms"`
}

// TerminationList is the answer to GET /v1/terminations.
type TerminationList struct {
	Terminations []Termination `json:"terminations"`
}

// EventType names why the gateway ended a termination, or what happened to a live one.
type EventType string

// Event types. All but EventDetached mean the termination has ended.
const (
	EventMediaTimeout EventType = "media_timeout"
	EventSetupTimeout EventType = "setup_timeout"
	EventShutdown     EventType = "shutdown"
	// EventDetached: the browser's WebSocket of a Gated termination closed (not
	// replaced by a new attach). The termination lives on with its gate closed; the
	// owner releases the floor at once rather than after the page is given up for gone.
	EventDetached EventType = "ws_detached"
)

// Ends reports whether the event means the termination has ended.
func (t EventType) Ends() bool { return t != EventDetached }

// Event tells the owner that the gateway ended one of its terminations, or that the
// browser of a gated one detached (Type says which).
type Event struct {
	Type          EventType `json:"type"`
	TerminationID string    `json:"termination_id"`
	Owner         string    `json:"owner"`
	CallID        string    `json:"call_id,omitempty"`
	Player        string    `json:"player,omitempty"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"at"`
}

// Drop reasons (keys of Counters.Drops and the reason label of mediagw_drops_total).
const (
	DropTruncated     = "truncated"
	DropBadVersion    = "bad_version"
	DropUnknownPT     = "unknown_pt"
	DropOversized     = "oversized"
	DropForeignSource = "foreign_source"
	DropNotBinary     = "not_binary"
	DropNoRemote      = "no_remote"
	DropNotAttached   = "not_attached"
	DropQueueFull     = "queue_full"
	DropHeld          = "held"
	// DropGated is a browser RTP packet while the gate of a Gated termination is closed
	// (push-to-talk without the floor).
	DropGated     = "gated"
	DropDTMF      = "dtmf"
	DropSendError = "send_error"
	// DropLatchWindow is a packet from another source than the SDP's private address
	// while that address still has LatchWindow to send first (source.go).
	DropLatchWindow = "latch_window"
)
