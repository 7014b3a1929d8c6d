package users

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sipport"
)

// minRefresh keeps a refresh from spinning when a registrar grants a lifetime of a second
// or less.
const minRefresh = 500 * time.Millisecond

// credentials answer digest challenges for one user.
type credentials struct{ user, password string }

// digest returns the credentials in the form sipport.AnswerChallenge takes.
func (c credentials) digest() sipport.Digest {
	return sipport.Digest{Username: c.user, Password: c.password}
}

// send readies req (outbound proxy route, Via), sends it and answers one 401/407
// challenge with cred. The final response is returned; a second challenge is returned
// as is, for the caller to report.
func (u *Users) send(ctx context.Context, req *sip.Request, cred credentials) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.RequestTimeout)
	defer cancel()
	u.sip.PrepareRequest(req)
	_, cl := u.sip.SIP()
	res, err := cl.Do(ctx, req)
	if err == nil && res == nil {
		err = sipport.ErrNoResponse // sipgo ends a transaction without a response when closing
	}
	if err != nil {
		return nil, fmt.Errorf("users: %s %s: %w", req.Method, req.Recipient.String(), err)
	}
	if (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) && cred.user != "" {
		if err := sipport.AnswerChallenge(req, res, cred.digest()); err != nil {
			return nil, fmt.Errorf("users: %s %s: %w", req.Method, req.Recipient.String(), err)
		}
		// A new transaction: the next CSeq and a new Via (branch).
		req.CSeq().SeqNo++
		u.sip.PrepareRequest(req)
		res, err = cl.Do(ctx, req)
		if err == nil && res == nil {
			err = sipport.ErrNoResponse
		}
		if err != nil {
			return nil, fmt.Errorf("users: %s %s with credentials: %w", req.Method, req.Recipient.String(), err)
		}
	}
	return res, nil
}

// transportOf is the transport a request travels on: that of its first Route, else of its
// request URI (the Contact we advertise must be reachable the same way).
func transportOf(req *sip.Request) string {
	uri := req.Recipient
	if r := req.Route(); r != nil {
		uri = r.Address
	}
	if t, ok := uri.UriParams.Get("transport"); ok && t != "" {
		return strings.ToLower(t)
	}
	if uri.Scheme == "sips" {
		return "tls"
	}
	return "udp"
}

// registrarURI is the request URI of REGISTER for aor.
func (u *Users) registrarURI(aor sip.Uri) sip.Uri {
	var r sip.Uri
	if u.cfg.Registrar != "" && sip.ParseUri(u.cfg.Registrar, &r) == nil {
		return r
	}
	return sip.Uri{Scheme: aor.Scheme, Host: aor.Host, Port: aor.Port}
}

// buildRegister makes a REGISTER for the worker's binding with the given lifetime. A
// stale contact (left by a previous holder of this user) is removed in the same request.
func (w *userWorker) buildRegister(aor, contact sip.Uri, expires time.Duration, stale string) *sip.Request {
	w.cseq++
	req := sip.NewRequest(sip.REGISTER, w.u.registrarURI(aor))
	from := &sip.FromHeader{DisplayName: w.rec.Display, Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", w.fromTag)
	cid := sip.CallIDHeader(w.callID)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor, Params: sip.NewParams()})
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: w.cseq, MethodName: sip.REGISTER})
	// The feature tags of the services the page offers (TS 24.229 section 5.1.1.2.1).
	cp := sip.NewParams()
	icsi.AddRegisterTags(&cp, w.services)
	req.AppendHeader(&sip.ContactHeader{Address: contact, Params: cp})
	if stale != "" {
		var su sip.Uri
		if sip.ParseUri(stale, &su) == nil {
			p := sip.NewParams()
			p.Add("expires", "0")
			req.AppendHeader(&sip.ContactHeader{Address: su, Params: p})
		}
	}
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, NOTIFY, INFO, UPDATE"))
	req.SetBody(nil)
	return req
}

// contactFor is our Contact for requests to uri: the user part is the DSM user name (so an
// INVITE to it names the user), the transport that of the first hop, learnt by routing a
// probe request the way send will.
func (u *Users) contactFor(user string, uri sip.Uri) sip.Uri {
	probe := sip.NewRequest(sip.OPTIONS, uri)
	u.sip.PrepareRequest(probe)
	return u.sip.ContactURI(user, transportOf(probe))
}

// register sends REGISTER (first, refresh or after new credentials) and updates the
// worker's state and the DSM from the outcome.
func (w *userWorker) register(ctx context.Context) {
	aor, err := sipport.ParseAOR(w.rec.SIPURI)
	if err != nil {
		w.fail(ctx, err.Error(), false)
		return
	}
	// A user taken over from another instance (a handoff, a lost holder) is still
	// reachable through the contact its record names until our REGISTER replaces it:
	// saying "registering" meanwhile made the SIP edge refuse calls the registrar
	// rightly sent here (480 during a rolling restart).
	if !w.registered && w.want.state != sipport.RegRegistering && w.rec.Contact == "" {
		w.writeState(ctx, sipport.RegRegistering, "")
	}
	expires := w.u.cfg.Expires
	if w.minExpires > expires {
		expires = w.minExpires
	}
	w.contact = w.u.contactFor(w.user, w.u.registrarURI(aor))
	stale := ""
	if w.rec.Contact != "" && w.rec.Contact != w.contactString() {
		stale = w.rec.Contact
	}
	req := w.buildRegister(aor, w.contact, expires, stale)
	log := w.log.With("call_id", w.callID)
	res, err := w.u.send(ctx, req, credentials{w.rec.AuthUser, w.rec.Password})
	if c := req.CSeq(); c != nil && c.SeqNo > w.cseq {
		w.cseq = c.SeqNo // the digest retry took a CSeq
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		w.u.met.registers.WithLabelValues("error").Inc()
		log.Warn("users: REGISTER failed", "err", err)
		w.transportFails++
		if w.registered && time.Now().Add(w.u.cfg.RetryMin).Before(w.expiresAt) {
			// A lost refresh while the binding still holds: try again soon.
			w.refreshAt = time.Now().Add(w.u.cfg.RetryMin)
			return
		}
		if !w.registered && w.transportFails < 2 {
			// One lost transaction (the SIP listener not serving yet at startup, a
			// registrar restarting) is retried before the browser is told.
			w.retryAt = time.Now().Add(w.u.cfg.RetryMin)
			return
		}
		w.fail(ctx, "no response from the registrar", true)
		return
	}
	w.transportFails = 0
	switch {
	case res.IsSuccess():
		granted := grantedExpires(res, w.contact, expires)
		if granted <= 0 {
			w.u.met.registers.WithLabelValues("rejected").Inc()
			w.fail(ctx, "registrar kept no binding", true)
			return
		}
		w.u.met.registers.WithLabelValues("ok").Inc()
		first := !w.registered
		w.registered = true
		w.regServices = slices.Clone(w.services)
		w.backoff = 0
		w.rec.Contact = w.contactString()
		refresh := max(granted/2, minRefresh)
		w.refreshAt = time.Now().Add(refresh)
		w.expiresAt = time.Now().Add(granted)
		w.writeState(ctx, sipport.RegRegistered, "")
		if first || stale != "" {
			w.u.noteBinding(ctx, w.user, w.contactString(), w.callID)
			log.Info("users: registered", "aor", aor.String(), "expires", granted, "refresh_in", refresh)
		}
	case res.StatusCode == sip.StatusIntervalToBrief:
		if h := res.GetHeader("Min-Expires"); h != nil {
			if s, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && time.Duration(s)*time.Second > expires {
				w.minExpires = time.Duration(s) * time.Second
				w.retryAt = time.Now() // at once, with the longer lifetime
				return
			}
		}
		w.u.met.registers.WithLabelValues("rejected").Inc()
		w.fail(ctx, "423 Interval Too Brief without Min-Expires", true)
	default:
		result := "rejected"
		if res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired {
			result = "challenged_again"
		}
		w.u.met.registers.WithLabelValues(result).Inc()
		log.Warn("users: REGISTER refused", "status", res.StatusCode, "reason", res.Reason)
		w.fail(ctx, fmt.Sprintf("%d %s", res.StatusCode, res.Reason), true)
	}
}

// fail records a failed registration and schedules a retry with backoff.
func (w *userWorker) fail(ctx context.Context, msg string, retry bool) {
	w.registered = false
	w.writeState(ctx, sipport.RegFailed, msg)
	w.backoff = min(max(w.backoff*2, w.u.cfg.RetryMin), w.u.cfg.RetryMax)
	if !retry {
		w.backoff = w.u.cfg.RetryMax
	}
	w.retryAt = time.Now().Add(w.backoff)
}

// unregister removes our binding (Expires: 0). It is best effort: if the registrar does
// not answer, the binding expires on its own.
func (w *userWorker) unregister(ctx context.Context) {
	if !w.registered || w.rec == nil {
		return
	}
	w.registered = false
	aor, err := sipport.ParseAOR(w.rec.SIPURI)
	if err != nil {
		return
	}
	req := w.buildRegister(aor, w.contact, 0, "")
	res, err := w.u.send(ctx, req, credentials{w.rec.AuthUser, w.rec.Password})
	switch {
	case err != nil:
		w.log.Warn("users: un-REGISTER failed", "call_id", w.callID, "err", err)
	case !res.IsSuccess():
		w.log.Warn("users: un-REGISTER refused", "call_id", w.callID, "status", res.StatusCode, "reason", res.Reason)
	default:
		w.u.met.registers.WithLabelValues("unregistered").Inc()
		w.log.Info("users: unregistered", "call_id", w.callID)
	}
}

// grantedExpires is the lifetime the registrar granted our contact: its expires parameter
// in the 200's Contact list, else the Expires header, else what we asked for.
func grantedExpires(res *sip.Response, ours sip.Uri, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.User != ours.User || c.Address.Host != ours.Host || c.Address.Port != ours.Port {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if s, err := strconv.Atoi(v); err == nil {
				return time.Duration(s) * time.Second
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if s, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			return time.Duration(s) * time.Second
		}
	}
	return asked
}
