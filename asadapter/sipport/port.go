// Package sipport is the seam between call control (package asadapter) and the users side
// (package asadapter/users, registrations and conference subscriptions): the SIP port the
// users side sends and receives through, and the few values both sides read. It imports
// nothing of either side, so the users side builds and tests without call control.
package sipport

import (
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Port is what the users side needs from the SIP user agent. The call controller
// (*asadapter.Adapter) implements it: both sides share one set of listeners, so NOTIFYs
// reach the Contact advertised in SUBSCRIBE and INVITEs the Contact advertised in REGISTER.
type Port interface {
	// SIP returns the user agent and the client to send with.
	SIP() (*sipgo.UserAgent, *sipgo.Client)
	// PrepareRequest adds the outbound proxy route (when the request has none) and our Via.
	PrepareRequest(req *sip.Request)
	// ContactURI is our Contact for a transport ("udp", "tcp", "tls") with a user part.
	ContactURI(user, transport string) sip.Uri
}

// Registration states written to users/<user> by the users side (the schema's
// registrationStates); call control reads them to choose the From of a call.
const (
	RegUnregistered = "unregistered"
	RegRegistering  = "registering"
	RegRegistered   = "registered"
	RegFailed       = "failed"
)
