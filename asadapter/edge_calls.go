package asadapter

import (
	"net"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/sipport"
)

// What call control adds to the edge: which dialogs are ours (the edge's Dialogs), the
// bounds that need a parsed request (requests in progress and calls per untrusted
// source), and whom an incoming call may ring. A call rings only a user whose
// registration is live, and only when its Request-URI names one of our domains or a
// contact we registered (the CSCF sends the registered Contact as the Request-URI). The
// users are looked up in the identities the change feed keeps (identity.go): a scan of
// user names costs no Redis round trip.

// The adapter tells the edge which dialogs are its own.
var _ edge.Dialogs = (*Adapter)(nil)

// Dialog reports whether a request with Call-ID callID, To tag local and From tag remote
// belongs to a call or a conference subscription of ours (edge.Dialogs); with local
// empty, whether it matches an incoming INVITE being answered (a CANCEL). next is where
// an incoming call's requests come from (the INVITE's source).
func (a *Adapter) Dialog(callID, local, remote []byte) (netip.Addr, bool) {
	a.cmu.Lock()
	calls := a.byID[string(callID)] // no copy: read under cmu, which addCall and removeCall hold
	var next netip.Addr
	found := false
	for _, c := range calls {
		c.mu.Lock()
		lt, rt := c.d.LocalTag, c.d.RemoteTag
		c.mu.Unlock()
		match := rt == "" || rt == string(remote)
		if len(local) == 0 {
			match = match && c.dir == DirIn
		} else {
			match = match && lt != "" && lt == string(local)
		}
		if match {
			next, found = c.peer, true
			break
		}
	}
	a.cmu.Unlock()
	if found {
		return next, true
	}
	if s, ok := a.users.(sipport.Subscriptions); ok && len(local) > 0 && s.Subscribed(string(callID)) {
		return netip.Addr{}, true
	}
	return netip.Addr{}, false
}

// sourceOf returns the address a request came from.
func sourceOf(req *sip.Request) netip.AddrPort {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// trustedSource reports whether req came from the trust domain: over an accepted TLS
// connection trusted by its certificate, else by its address.
func (a *Adapter) trustedSource(req *sip.Request) bool {
	src := sourceOf(req)
	if strings.EqualFold(req.Transport(), "tls") && a.edge.TrustByCertificate() {
		if trusted, known := a.conns.trustedTLSPeer(src); known {
			return trusted
		}
	}
	return a.edge.TrustedAddr(src.Addr())
}

// admitRequest counts a request of an untrusted source while it is handled; false when
// the source has too many in progress. release is nil for a trusted source (no bounds).
func (a *Adapter) admitRequest(req *sip.Request) (release func(), ok bool) {
	if req.Method == sip.ACK || a.trustedSource(req) {
		return nil, true
	}
	return a.edge.Enter(sourceOf(req).Addr())
}

// calledUser returns the user an initial INVITE rings, or answers the INVITE with a
// refusal (counted with the edge's) and returns false.
func (a *Adapter) calledUser(req *sip.Request, tx sip.ServerTransaction) (string, bool) {
	src := sourceOf(req).Addr()
	refuse := func(r edge.Reason, code int, reason string) (string, bool) {
		a.edge.Refused(r, src)
		a.log.Debug("incoming call refused", "reason", r.String(), "request_uri", req.Recipient.String(),
			"call_id", req.CallID().Value())
		a.reply(tx, req, code, reason, "", nil)
		return "", false
	}
	user := req.Recipient.User
	if user == "" {
		user = req.To().Address.User
	}
	if user == "" {
		return refuse(edge.ReasonUnknownUser, 404, "Not Found")
	}
	reg, aor, known := a.ids.registration(user)
	if !a.ids.ready.Load() {
		// The identities are being loaded (the first moments of Run): the domain is
		// checked here, the user by playerOfUser's read.
		known, reg = true, sipport.RegRegistered
	}
	if !a.ownsURI(req.Recipient, aor) {
		return refuse(edge.ReasonForeignDomain, 404, "Not Found")
	}
	if !known {
		return refuse(edge.ReasonUnknownUser, 404, "Not Found")
	}
	if reg != sipport.RegRegistered {
		// Registering, failed or ended: the user cannot be reached here now.
		return refuse(edge.ReasonNotRegistered, 480, "Temporarily Unavailable")
	}
	return user, true
}

// ownsURI reports whether a Request-URI is for us: our domain, the domain of the user's
// address of record (aor, "" when unknown), or a contact we hand out (our advertised
// host or a listener's address, with one of our listeners' ports).
func (a *Adapter) ownsURI(u sip.Uri, aor string) bool {
	host := strings.ToLower(strings.Trim(u.Host, "[]"))
	if host == strings.ToLower(a.cfg.Domain) {
		return true
	}
	if aor != "" {
		var au sip.Uri
		if err := sip.ParseUri(aor, &au); err == nil && host == strings.ToLower(au.Host) {
			return true
		}
	}
	port := u.Port
	if port == 0 {
		port = 5060
		if u.Scheme == "sips" {
			port = 5061
		}
	}
	ours := false
	for _, p := range a.tp.ports {
		ours = ours || p == port
	}
	if !ours {
		return false
	}
	if host == strings.ToLower(strings.Trim(a.tp.host, "[]")) {
		return true
	}
	for _, la := range a.tp.laddrs {
		if h, _, err := net.SplitHostPort(la); err == nil && host == h {
			return true
		}
	}
	return false
}

// openDialog counts an incoming call of an untrusted source (release nil for a trusted
// one); false when the source has too many.
func (a *Adapter) openDialog(req *sip.Request) (release func(), ok bool) {
	if a.trustedSource(req) {
		return nil, true
	}
	return a.edge.OpenDialog(sourceOf(req).Addr())
}

// registration returns what the feed says of user: its registration state and address of
// record; known is false for a user the DSM does not have.
func (ids *identities) registration(user string) (reg, aor string, known bool) {
	ids.mu.RLock()
	defer ids.mu.RUnlock()
	u, ok := ids.users[user]
	if !ok {
		return "", "", false
	}
	return u.registration, u.sipURI, true
}
