package asadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/sdp"
)

// Dialog states kept in the dialog record.
const (
	dlgCalling   = "calling"   // INVITE sent (or received), no dialog yet
	dlgEarly     = "early"     // provisional response with a tag
	dlgConfirmed = "confirmed" // 2xx sent or received
)

// Call directions.
const (
	dirOut = "out" // the browser called (we are the UAC)
	dirIn  = "in"  // a SIP peer called the browser (we are the UAS)
)

// dialog is a call's SIP dialog state (RFC 3261 section 12) plus what another instance
// needs to end the call: it is stored in Redis as JSON on every change.
type dialog struct {
	Player     string   `json:"player"`
	Owner      string   `json:"owner"`
	Dir        string   `json:"dir"`
	State      string   `json:"state"`
	CallID     string   `json:"call_id"`
	LocalTag   string   `json:"ltag"`
	RemoteTag  string   `json:"rtag,omitempty"`
	LocalURI   string   `json:"luri"`  // From (ours) without tag
	RemoteURI  string   `json:"ruri"`  // To (theirs) without tag
	LocalCSeq  uint32   `json:"lcseq"` // last CSeq we used
	RemoteCSeq uint32   `json:"rcseq"` // last CSeq the peer used
	RouteSet   []string `json:"routes,omitempty"`
	Target     string   `json:"target"` // remote target (Contact) or request URI before a dialog
	Term       string   `json:"term,omitempty"`
	// InviteVia and InviteCSeq let another instance CANCEL our INVITE before an answer.
	InviteVia  string     `json:"invite_via,omitempty"`
	InviteCSeq uint32     `json:"invite_cseq,omitempty"`
	InviteURI  string     `json:"invite_uri,omitempty"`
	Origin     sdp.Origin `json:"origin"`
	// Session timer (RFC 4028): interval in seconds and who refreshes ("uac"/"uas").
	SessionExpires int    `json:"se,omitempty"`
	Refresher      string `json:"refresher,omitempty"`

	listed bool // already in the calls set (not stored)
}

func (a *Adapter) saveDialog(ctx context.Context, d *dialog) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("asadapter: encode dialog of %s: %w", d.Player, err)
	}
	// The first save also lists the player in the set a takeover scans; later saves
	// (CSeq, state) rewrite only the record, one command.
	if d.listed {
		err = a.st.Redis().Set(ctx, a.keys.dialog(d.Player), b, 0).Err()
	} else {
		_, err = a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a.keys.dialog(d.Player), b, 0)
			p.SAdd(ctx, a.keys.calls(), d.Player)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("asadapter: save dialog of %s: %w", d.Player, err)
	}
	d.listed = true
	return nil
}

func (a *Adapter) loadDialog(ctx context.Context, player string) (*dialog, error) {
	b, err := a.st.Redis().Get(ctx, a.keys.dialog(player)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("asadapter: dialog of %s: %w", player, ErrNoDialog)
	}
	if err != nil {
		return nil, fmt.Errorf("asadapter: load dialog of %s: %w", player, err)
	}
	var d dialog
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("asadapter: decode dialog of %s: %w", player, err)
	}
	d.listed = true
	return &d, nil
}

func (a *Adapter) deleteDialog(ctx context.Context, player string) {
	_, err := a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, a.keys.dialog(player))
		p.SRem(ctx, a.keys.calls(), player)
		return nil
	})
	if err != nil {
		a.log.Warn("delete dialog failed; the rescan retries", "player", player, "err", err)
	}
}

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
		req.AppendHeader(a.contactHeader(nextHopTransport(req)))
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

// nameAddr renders an address without its tag for a dialog record. The display name
// becomes a SIP quoted-string (RFC 3261 section 25.1: backslash and double quote escaped);
// control characters are dropped, since a CR or LF would end the header.
func nameAddr(display string, u sip.Uri) string {
	display = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, display)
	if display != "" {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(display) + `" <` + u.String() + ">"
	}
	return "<" + u.String() + ">"
}

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
