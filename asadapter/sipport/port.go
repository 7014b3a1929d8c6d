// Package sipport is the seam between call control (package asadapter) and the users side
// (package asadapter/users, registrations and conference subscriptions): the SIP port the
// users side sends and receives through (Port), what call control asks the users side
// about a registered user's calls (Users), the digest answer both sides send
// (AnswerChallenge), and the few values both sides read. It imports nothing of either
// side, so the users side builds and tests without call control.
package sipport

import (
	"context"
	"fmt"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
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

// Users is what call control asks the users side about a registered user whose page
// places or answers a call (which browser a user is logged in with, and back), so that every request the page causes carries the user's
// identity: where the user is registered from (the Contact of the user's requests), and
// the answer to a digest challenge made with the user's credentials. The users side keeps
// the credentials and computes the answer itself: call control never holds a password,
// and how the users side stores it (a password, a hash) can change under this interface.
// *users.Users implements it.
type Users interface {
	// Binding returns the registration of user: the Contact registered for it and the
	// gateway instance holding it. ok is false when the user has no live registration.
	Binding(ctx context.Context, user string) (b Binding, ok bool, err error)
	// Authorize answers the digest challenge of res (a 401 or 407 to req) with user's
	// credentials: it sets req's Authorization or Proxy-Authorization. The error wraps
	// ErrNoCredentials when there are none for user.
	Authorize(ctx context.Context, user string, req *sip.Request, res *sip.Response) error
	// ClientOf returns the client key of the browser user is logged in with, "" when
	// none. It is the users side's own state, never a DSM object: pages may read some
	// DSM objects, and a client key is what a page is known by.
	ClientOf(ctx context.Context, user string) (string, error)
	// UserOf returns the user the browser with client key client is logged in as, ""
	// when none.
	UserOf(ctx context.Context, client string) (string, error)
}

// Binding is a user's registration as one gateway instance holds it.
type Binding struct {
	Contact  sip.Uri // the Contact registered for the user
	Instance string  // the instance that registered it (and receives its requests)
}

// Digest is a set of digest credentials: a user name and either the password or HA1, the
// hex hash of "user:realm:password" for the challenge's realm and algorithm (a secret that
// can be stored instead of the password; HA1 wins when both are set).
type Digest struct {
	Username string
	Password string
	HA1      string
}

// AnswerChallenge answers the challenge of res (401: WWW-Authenticate, 407:
// Proxy-Authenticate) to req with cred, setting req's Authorization or
// Proxy-Authorization (RFC 3261 section 22.2 and 22.3; MD5 or SHA-256, qop auth or none).
// The caller sends req again in a new transaction (next CSeq, new branch).
func AnswerChallenge(req *sip.Request, res *sip.Response, cred Digest) error {
	chalHdr, answerHdr := "WWW-Authenticate", "Authorization"
	switch res.StatusCode {
	case sip.StatusUnauthorized:
	case sip.StatusProxyAuthRequired:
		chalHdr, answerHdr = "Proxy-Authenticate", "Proxy-Authorization"
	default:
		return fmt.Errorf("%w: status %d", ErrBadChallenge, res.StatusCode)
	}
	h := res.GetHeader(chalHdr)
	if h == nil {
		return fmt.Errorf("%w: %d without %s", ErrBadChallenge, res.StatusCode, chalHdr)
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadChallenge, chalHdr, err)
	}
	// Some servers write the algorithm in lower case, which the RFCs do not allow.
	chal.Algorithm = strings.ToUpper(chal.Algorithm)
	answer, err := digest.Digest(chal, digest.Options{
		Method: req.Method.String(), URI: req.Recipient.Addr(),
		Username: cred.Username, Password: cred.Password, A1: cred.HA1,
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadChallenge, err)
	}
	req.RemoveHeader(answerHdr)
	req.AppendHeader(sip.NewHeader(answerHdr, answer.String()))
	return nil
}
