package asadapter

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sipport"
)

// Building in-dialog requests from a dialog record, and the header helpers it needs.

// prebuilt is a sipgo request option that adds nothing: our requests are complete.
func prebuilt(*sipgo.Client, *sip.Request) error { return nil }

// request builds an in-dialog request (RFC 3261 section 12.2.1.1) with the next CSeq.
// The caller holds whatever lock guards d.
func (a *Adapter) request(d *dialog, method sip.RequestMethod, body []byte, contentType string) (*sip.Request, error) {
	d.LocalCSeq++
	return a.requestWithCSeq(d, method, d.LocalCSeq, body, contentType)
}

func (a *Adapter) requestWithCSeq(d *dialog, method sip.RequestMethod, cseq uint32, body []byte, contentType string) (*sip.Request, error) {
	var target sip.Uri
	if err := sip.ParseUri(d.Target, &target); err != nil {
		return nil, fmt.Errorf("asadapter: remote target %q: %w", d.Target, err)
	}
	req := sip.NewRequest(method, target)
	for _, r := range d.RouteSet {
		var u sip.Uri
		if err := sip.ParseUri(strings.Trim(r, "<>"), &u); err != nil {
			return nil, fmt.Errorf("asadapter: route %q: %w", r, err)
		}
		req.AppendHeader(&sip.RouteHeader{Address: u})
	}
	from, err := addrHeader(d.LocalURI, d.LocalTag)
	if err != nil {
		return nil, err
	}
	to, err := addrHeader(d.RemoteURI, d.RemoteTag)
	if err != nil {
		return nil, err
	}
	req.AppendHeader(&sip.FromHeader{DisplayName: from.DisplayName, Address: from.Address, Params: from.Params})
	req.AppendHeader(&sip.ToHeader{DisplayName: to.DisplayName, Address: to.Address, Params: to.Params})
	cid := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if method != sip.ACK && method != sip.CANCEL {
		req.AppendHeader(a.dialogContact(d, nextHopTransport(req)))
	}
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	a.addVia(req)
	return req, nil
}

// addrHeader parses a name-addr kept in a dialog record and adds a tag.
func addrHeader(v, tag string) (*sip.FromHeader, error) {
	h := &sip.FromHeader{Params: sip.NewParams()}
	name, err := sip.ParseAddressValue(v, &h.Address, &h.Params)
	if err != nil {
		return nil, fmt.Errorf("asadapter: address %q: %w", v, err)
	}
	h.DisplayName = name
	h.Params.Remove("tag")
	if tag != "" {
		h.Params.Add("tag", tag)
	}
	return h, nil
}

// nameAddr renders an address without its tag for a dialog record (sipport.NameAddr).
func nameAddr(display string, u sip.Uri) string { return sipport.NameAddr(display, u) }

// routeSet returns the Record-Route values of a message as a route set: reversed for
// the UAC (from a response), as is for the UAS (from the request).
func routeSet(m interface{ GetHeaders(string) []sip.Header }, reverse bool) []string {
	hs := m.GetHeaders("Record-Route")
	var out []string
	for _, h := range hs {
		// One header may carry several comma-separated values.
		for _, v := range splitHeaderList(h.Value()) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// splitHeaderList splits a comma-separated header value, ignoring commas inside <> and
// quotes.
func splitHeaderList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			quoted = !quoted
		case '<':
			if !quoted {
				depth++
			}
		case '>':
			if !quoted && depth > 0 {
				depth--
			}
		case ',':
			if !quoted && depth == 0 {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// contactTarget returns the URI of a message's Contact, or "" without one.
func contactTarget(m interface{ GetHeader(string) sip.Header }) string {
	h := m.GetHeader("Contact")
	if h == nil {
		return ""
	}
	if c, ok := h.(*sip.ContactHeader); ok {
		return c.Address.String()
	}
	var u sip.Uri
	params := sip.NewParams()
	if _, err := sip.ParseAddressValue(splitHeaderList(h.Value())[0], &u, &params); err != nil {
		return ""
	}
	return u.String()
}
