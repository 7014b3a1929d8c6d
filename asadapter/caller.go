package asadapter

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sipport"
)

// A registered user's identity on every request its page causes. A call placed from the
// player of a browser logged in as a registered user (identity.go) is that user's call,
// not the gateway's:
//
//   - From is the user's address of record, with the display name of the users index;
//   - P-Preferred-Identity (RFC 3325) names the same address to the CSCF, which asserts it;
//   - Contact is the contact registered for the user (the users side's binding), so a
//     P-CSCF that checks requests against the registration accepts them, and in-dialog
//     requests reach the instance that holds the registration;
//   - a 401/407 to the INVITE or to any later request of the dialog (re-INVITE, UPDATE,
//     BYE, INFO) is answered with the user's own credentials, which the users side holds
//     and applies (sipport.Users.Authorize): the gateway's SIP_AUTH_USER is only for
//     calls made with the gateway's own identity.
//
// Calls of a page that is not signed in keep the gateway's identity, as before. A call
// to a registered user (call_in.go) answers with the user's Contact likewise.

// caller is who an outgoing call is placed as.
type caller struct {
	user    string // DSM user name; "" for the adapter's own identity
	display string
	aor     sip.Uri
}

// UseUsers gives call control the users side, which knows registered users' bindings and
// answers challenges with their credentials. Call it before Run. Without it, a
// registered user's call still goes out From the user's address of record, with our own
// Contact and no credentials.
func (a *Adapter) UseUsers(u sipport.Users) { a.users = u }

// callerIdentity returns who a call placed from player is placed as: the registered user
// its browser is logged in as (the users side's records say which), else the adapter.
func (a *Adapter) callerIdentity(ctx context.Context, player string) caller {
	ours := caller{display: a.cfg.DisplayName, aor: sip.Uri{Scheme: "sip", User: a.cfg.User, Host: a.cfg.Domain}}
	client, _, ok := a.schema.ParsePlayerAddress(player)
	if !ok || a.users == nil {
		return ours
	}
	name, err := a.users.UserOf(ctx, client)
	if err != nil {
		a.log.Warn("looking up the browser's user failed; calling with the adapter's identity", "player", player, "err", err)
		return ours
	}
	if name == "" {
		return ours
	}
	display, s, ok := a.ids.of(name)
	if !ok {
		return ours
	}
	u, err := sipport.ParseAOR(s) // an address of record, not a contact
	if err != nil {
		a.log.Warn("registered user's sip_uri unusable; calling with the adapter's identity", "player", player, "sip_uri", s, "err", err)
		return ours
	}
	return caller{user: name, display: display, aor: u}
}

// bindingOf returns the binding of a registered user when this instance holds it. held
// elsewhere is true when another instance does: the user's calls belong there, since
// in-dialog requests come to the registered contact.
func (a *Adapter) bindingOf(ctx context.Context, user string) (b sipport.Binding, ok, elsewhere bool) {
	if user == "" || a.users == nil {
		return b, false, false
	}
	b, ok, err := a.users.Binding(ctx, user)
	if err != nil {
		a.log.Warn("read a user's binding failed; using our own contact", "user", user, "err", err)
		return b, false, false
	}
	if !ok {
		return b, false, false
	}
	if b.Instance != a.cfg.Instance {
		return b, false, true
	}
	return b, true, false
}

// dialogContact is the Contact of our requests and responses in dialog d for transport:
// the user's registered contact, else a contact of ours with the user's name, else ours.
//
// It carries the feature tags of the call's service (TS 24.229 section 5.1.2A.1.1: the
// Contact of a request or 2xx that makes a dialog names the ICSI).
func (a *Adapter) dialogContact(d *dialog, transport string) *sip.ContactHeader {
	h := a.contactHeader(transport)
	if d.Contact != "" {
		var u sip.Uri
		if err := sip.ParseUri(d.Contact, &u); err == nil {
			h = &sip.ContactHeader{Address: u}
		}
	} else if d.User != "" {
		h = &sip.ContactHeader{Address: a.ContactURI(d.User, transport)}
	}
	if d.Service != "" {
		h.Params = sip.NewParams()
		icsi.Service(d.Service).AddContactTags(&h.Params)
	}
	return h
}

// authorize answers the challenge of res to req with the credentials of user ("" for the
// adapter's own). The error wraps sipport.ErrNoCredentials when there are none.
func (a *Adapter) authorize(ctx context.Context, user string, req *sip.Request, res *sip.Response) error {
	if user != "" {
		if a.users == nil {
			return fmt.Errorf("asadapter: credentials of %s: %w", user, sipport.ErrNoCredentials)
		}
		return a.users.Authorize(ctx, user, req, res)
	}
	if a.cfg.AuthUser == "" {
		return fmt.Errorf("asadapter: credentials of the gateway: %w", sipport.ErrNoCredentials)
	}
	return sipport.AnswerChallenge(req, res, sipport.Digest{Username: a.cfg.AuthUser, Password: a.cfg.AuthPassword})
}

// reissue readies a request answered with credentials for its new transaction: the next
// CSeq and a new Via (branch).
func (a *Adapter) reissue(req *sip.Request) {
	req.CSeq().SeqNo++
	a.addVia(req)
}

// do sends a request of user's dialog in a client transaction and returns its final
// response, answering one digest challenge with user's credentials (the adapter's own
// for "").
func (a *Adapter) do(ctx context.Context, user string, req *sip.Request) (*sip.Response, error) {
	res, err := a.cli.Do(ctx, req, prebuilt)
	if err == nil && res == nil {
		// sipgo ends a transaction without a response when the user agent is closing.
		err = fmt.Errorf("asadapter: %s: %w", req.Method, sipport.ErrNoResponse)
	}
	if err != nil {
		return nil, err
	}
	if res.StatusCode != sip.StatusUnauthorized && res.StatusCode != sip.StatusProxyAuthRequired {
		return res, nil
	}
	if err := a.authorize(ctx, user, req, res); err != nil {
		if errors.Is(err, sipport.ErrNoCredentials) {
			return res, nil // the challenge is the answer
		}
		return nil, err
	}
	a.reissue(req)
	res, err = a.cli.Do(ctx, req, prebuilt)
	if err == nil && res == nil {
		err = fmt.Errorf("asadapter: %s after a challenge: %w", req.Method, sipport.ErrNoResponse)
	}
	return res, err
}

// The caller id of an incoming call: From, unless the caller's identity is asserted.
// P-Asserted-Identity (RFC 3325) is believed only from within the trust domain: the SIP
// edge (package edge) removes it from every message from outside before sipgo parses it,
// so one that reaches call control was asserted by a trusted peer (the CSCF).

// assertedIdentity returns the first sip: or sips: identity of req's P-Asserted-Identity
// headers (a header may hold a SIP URI and a tel URI, RFC 3325 section 9.1), with its
// display name.
func assertedIdentity(req *sip.Request) (display string, uri sip.Uri, ok bool) {
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitHeaderList(h.Value()) {
			v = strings.TrimSpace(v)
			if v == "" || strings.ContainsAny(v, "\r\n") {
				continue
			}
			var u sip.Uri
			params := sip.NewParams()
			name, err := sip.ParseAddressValue(v, &u, &params)
			if err != nil || (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
				continue
			}
			return name, sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}, true
		}
	}
	return "", sip.Uri{}, false
}

// callerOf returns the caller id of an incoming INVITE: the asserted identity when there
// is one (only the trust domain's reach call control), else From.
func callerOf(req *sip.Request) (display string, uri sip.Uri) {
	if d, u, ok := assertedIdentity(req); ok {
		return d, u
	}
	return req.From().DisplayName, req.From().Address
}
