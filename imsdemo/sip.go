package imsdemo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// allowMethods is what the server accepts.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, SUBSCRIBE"

// listen binds the SIP listeners.
func (s *Server) listen() error {
	s.ports, s.laddrs = map[string]int{}, map[string]string{}
	if s.cfg.ListenUDP != "-" {
		c, err := net.ListenPacket("udp", s.cfg.ListenUDP)
		if err != nil {
			return fmt.Errorf("imsdemo: listen udp %s: %w", s.cfg.ListenUDP, err)
		}
		s.udp = c
		s.ports["udp"] = c.LocalAddr().(*net.UDPAddr).Port
		s.laddrs["udp"] = c.LocalAddr().String()
	}
	if s.cfg.ListenTCP != "-" {
		l, err := net.Listen("tcp", s.cfg.ListenTCP)
		if err != nil {
			if s.udp != nil {
				s.udp.Close()
			}
			return fmt.Errorf("imsdemo: listen tcp %s: %w", s.cfg.ListenTCP, err)
		}
		s.tcp = l
		s.ports["tcp"] = l.Addr().(*net.TCPAddr).Port
	}
	return nil
}

// Addr returns the advertised address of a listener ("udp" or "tcp"), "" when disabled.
func (s *Server) Addr(transport string) string {
	p, ok := s.ports[strings.ToLower(transport)]
	if !ok {
		return ""
	}
	return net.JoinHostPort(s.cfg.AdvertiseHost, strconv.Itoa(p))
}

// RoomURI is the URI of a room: sip:<room>@<Domain>.
func (s *Server) RoomURI(room string) string {
	return "sip:" + room + "@" + s.cfg.Domain
}

// TalkGroupURI is the URI of a talk group: sip:<group>@<TalkGroupDomain>.
func (s *Server) TalkGroupURI(group string) string {
	return "sip:" + group + "@" + s.cfg.TalkGroupDomain
}

// kindOf says what a request URI names: a talk group when its host is the talk group
// domain, else the echo service or a conference room.
func (s *Server) kindOf(u sip.Uri) Kind {
	switch {
	case s.cfg.TalkGroupDomain != "" && strings.EqualFold(u.Host, s.cfg.TalkGroupDomain):
		return KindTalkGroup
	case u.User == s.cfg.EchoUser:
		return KindEcho
	}
	return KindConference
}

// contact is our Contact for a room's dialogs on a transport, with the isfocus feature
// tag of RFC 4579 (this URI is a conference focus).
func (s *Server) contact(user, transport string) *sip.ContactHeader {
	transport = strings.ToLower(transport)
	port, ok := s.ports[transport]
	if !ok {
		transport, port = "udp", s.ports["udp"]
	}
	u := sip.Uri{Scheme: "sip", User: user, Host: s.cfg.AdvertiseHost, Port: port}
	if transport != "udp" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", transport)
	}
	h := &sip.ContactHeader{Address: u, Params: sip.NewParams()}
	h.Params.Add("isfocus", "")
	return h
}

// wellFormed checks the headers every handler relies on.
func wellFormed(req *sip.Request) bool {
	return req.CallID() != nil && req.From() != nil && req.To() != nil && req.CSeq() != nil &&
		req.CSeq().MethodName == req.Method && req.Via() != nil
}

// reply answers req; a non-empty tag is our To tag. It returns the response (sent when
// tx is not nil).
func (s *Server) reply(tx sip.ServerTransaction, req *sip.Request, code int, reason, tag string, body []byte, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if tag != "" && res.To() != nil {
		res.To().Params.Remove("tag")
		res.To().Params.Add("tag", tag)
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if tx != nil {
		if err := tx.Respond(res); err != nil {
			s.log.Debug("respond failed", "status", code, "call_id", req.CallID().Value(), "err", err)
		}
	}
	return res
}

// dialog is our side of a dialog in which we are the UAS (a participant's INVITE, a
// subscriber's SUBSCRIBE): what RFC 3261 section 12.1.1 keeps to send requests in it.
type dialog struct {
	callID     string
	localTag   string
	remoteTag  string
	local      sip.Uri // To of the request that made the dialog (ours)
	localName  string
	remote     sip.Uri // From of that request
	remoteName string
	localCSeq  uint32
	remoteCSeq uint32
	target     sip.Uri   // the peer's Contact
	routes     []sip.Uri // Record-Route of the request, in order
	user       string    // user part of our Contact (the room)
	transport  string    // transport the request came on (for our Contact)
}

// newDialog takes the dialog state from a dialog-creating request.
func newDialog(req *sip.Request, localTag, user string) dialog {
	d := dialog{
		callID: req.CallID().Value(), localTag: localTag, user: user,
		local: req.To().Address, localName: req.To().DisplayName,
		remote: req.From().Address, remoteName: req.From().DisplayName,
		localCSeq: 1, remoteCSeq: req.CSeq().SeqNo, target: req.From().Address,
		transport: strings.ToLower(req.Transport()),
	}
	d.remoteTag, _ = req.From().Params.Get("tag")
	if c := req.Contact(); c != nil {
		d.target = c.Address
	}
	for _, h := range req.GetHeaders("Record-Route") {
		for _, v := range splitList(h.Value()) {
			var u sip.Uri
			if err := sip.ParseUri(strings.Trim(strings.TrimSpace(v), "<>"), &u); err == nil {
				d.routes = append(d.routes, u)
			}
		}
	}
	return d
}

// matches reports whether an in-dialog request belongs to the dialog.
func (d *dialog) matches(req *sip.Request) bool {
	from, _ := req.From().Params.Get("tag")
	to, _ := req.To().Params.Get("tag")
	return req.CallID().Value() == d.callID && from == d.remoteTag && to == d.localTag
}

// inSequence records the CSeq of a request from the peer; false for an old or repeated
// one (RFC 3261 section 12.2.2: answered 500).
func (d *dialog) inSequence(req *sip.Request) bool {
	n := req.CSeq().SeqNo
	if n <= d.remoteCSeq {
		return false
	}
	d.remoteCSeq = n
	return true
}

// request builds the next in-dialog request (RFC 3261 section 12.2.1.1), caller holding
// whatever guards d.
func (s *Server) request(d *dialog, method sip.RequestMethod, contentType string, body []byte) *sip.Request {
	d.localCSeq++
	req := sip.NewRequest(method, d.target)
	for _, r := range d.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	from := &sip.FromHeader{DisplayName: d.localName, Address: d.local, Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	to := &sip.ToHeader{DisplayName: d.remoteName, Address: d.remote, Params: sip.NewParams()}
	to.Params.Add("tag", d.remoteTag)
	req.AppendHeader(from)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.localCSeq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(s.contact(d.user, nextHopTransport(req)))
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	s.addVia(req)
	return req
}

// addVia adds our Via for the next hop's transport and, over UDP, sends from our
// listener so that responses and the peer's requests come back to it.
func (s *Server) addVia(req *sip.Request) {
	tp := strings.ToLower(nextHopTransport(req))
	if _, ok := s.ports[tp]; !ok {
		tp = "udp"
	}
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(tp),
		Host: s.cfg.AdvertiseHost, Port: s.ports[tp], Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	if la, ok := s.laddrs[tp]; ok {
		if host, port, err := sip.ParseAddr(la); err == nil {
			req.Laddr = sip.Addr{IP: net.ParseIP(host), Port: port, Hostname: host}
		}
	}
}

// nextHopTransport is the transport toward the first Route or the request URI.
func nextHopTransport(req *sip.Request) string {
	u := req.Recipient
	if r := req.Route(); r != nil {
		u = r.Address
	}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		return strings.ToUpper(t)
	}
	return "UDP"
}

// prebuilt is a sipgo request option that adds nothing: our requests are complete.
func prebuilt(*sipgo.Client, *sip.Request) error { return nil }

// do sends a request and waits for its final response. A request too large for a UDP
// datagram (a full conference state of many participants) goes over TCP instead, as
// RFC 3261 section 18.1.1 asks.
func (s *Server) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	res, err := s.doOnce(ctx, req)
	if err == nil || !errors.Is(err, sip.ErrUDPMTUCongestion) {
		return res, err
	}
	big := req.Clone()
	u := &big.Recipient
	if r := big.Route(); r != nil {
		u = &r.Address
	}
	if u.UriParams == nil {
		u.UriParams = sip.NewParams()
	}
	u.UriParams.Remove("transport")
	u.UriParams.Add("transport", "tcp")
	big.RemoveHeader("Via")
	big.Laddr = sip.Addr{}
	big.SetTransport("")
	s.addVia(big)
	return s.doOnce(ctx, big)
}

func (s *Server) doOnce(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := s.cli.TransactionRequest(ctx, req, prebuilt)
	if err != nil {
		return nil, fmt.Errorf("imsdemo: send %s: %w", req.Method, err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, fmt.Errorf("imsdemo: %s: %w", req.Method, err)
			}
			return nil, fmt.Errorf("imsdemo: %s: transaction ended without a response", req.Method)
		case <-ctx.Done():
			return nil, fmt.Errorf("imsdemo: %s: %w", req.Method, ctx.Err())
		}
	}
}

// splitList splits a header value at commas outside quotes and angle brackets.
func splitList(v string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' && (i == 0 || v[i-1] != '\\'):
			quoted = !quoted
		case quoted:
		case c == '<':
			depth++
		case c == '>':
			depth--
		case c == ',' && depth == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// identity is who a participant is: the P-Asserted-Identity its CSCF vouched for
// (RFC 3325; the first SIP URI of them), else its From.
func identity(req *sip.Request) (*sip.Uri, string) {
	display := req.From().DisplayName
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitList(h.Value()) {
			var u sip.Uri
			params := sip.NewParams()
			name, err := sip.ParseAddressValue(strings.TrimSpace(v), &u, &params)
			if err != nil || (u.Scheme != "sip" && u.Scheme != "sips") {
				continue
			}
			if name != "" {
				display = name
			}
			return bareURI(u), display
		}
	}
	return bareURI(req.From().Address), display
}

// bareURI drops parameters and headers: an address of record names the user, not the
// route to it.
func bareURI(u sip.Uri) *sip.Uri {
	return &sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}
}
