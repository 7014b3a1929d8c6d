package asadapter

import (
	"context"

	"dsmgw/asadapter/sdp"
)

// MediaGateway is what the adapter needs from the media gateway (package mediagw, over its
// HTTP API or in process): terminations that carry RTP between the browser's WebSocket and
// the SIP side. The adapter declares it so it can be wired to any implementation.
type MediaGateway interface {
	// AddLocal allocates an RTP port for a new call and returns the address to put in SDP.
	AddLocal(ctx context.Context, req LocalRequest) (Local, error)
	// AddRemote sets where the far end's RTP goes and which payload types were
	// negotiated; it returns the URL the browser's media player attaches to.
	AddRemote(ctx context.Context, id string, r sdp.Remote) (url string, err error)
	// Modify changes the remote side after a re-INVITE (new address, hold, resume).
	Modify(ctx context.Context, id string, r sdp.Remote) error
	// Delete removes a termination; deleting an unknown one is not an error.
	Delete(ctx context.Context, id string) error
	// DTMF sends RFC 4733 telephone-events for digits toward the SIP side.
	DTMF(ctx context.Context, id string, digits string) error
}

// LocalRequest asks for a local termination.
type LocalRequest struct {
	Player string // the player object's address, for the gateway's logs and events
	CallID string
}

// Local is an allocated local termination.
type Local struct {
	ID   string // termination id
	Addr string // IP address to advertise in SDP (c=)
	Port int    // RTP port to advertise in SDP (m=); RTCP is Port+1
}
