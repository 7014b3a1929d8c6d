package floorctl

import (
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The media line of the floor control channel: "m=application <port> udp MCPTT"
// (TS 24.380 §14, TS 24.379): floor control messages over plain UDP, format MCPTT.
const (
	sdpMedia  = "application"
	sdpProto  = "udp"
	sdpFormat = "MCPTT"
)

// Limits on SDP from the network, as in the AS adapter: real bodies are well under 2 KB,
// the limits keep a hostile one from costing memory or time.
const (
	maxSDPBytes  = 16 << 10
	maxFmtpBytes = 1024
	maxParams    = 16
)

// Params are the parameters of the "a=fmtp:MCPTT" attribute (TS 24.380 §12.1.2).
type Params struct {
	// Queueing is "mc_queueing": queued floor requests are supported (§12.1.2.2).
	Queueing bool
	// Priority is "mc_priority=<1..255>": in an offer the highest Floor Priority the
	// offerer asks for, in an answer the highest granted (§12.1.2.2); 0 when absent.
	Priority uint8
	// Granted is "mc_granted": in an offer, support for the floor being granted in the
	// answer; in an answer, the floor granted to the offerer (§12.1.2.2).
	Granted bool
	// ImplicitRequest is "mc_implicit_request": the offer is also a Floor Request
	// (§12.1.2.2).
	ImplicitRequest bool
}

// String returns the attribute value, e.g. "mc_queueing;mc_priority=5", "" for none.
func (p Params) String() string {
	var parts []string
	if p.Queueing {
		parts = append(parts, "mc_queueing")
	}
	if p.Priority > 0 {
		parts = append(parts, "mc_priority="+strconv.Itoa(int(p.Priority)))
	}
	if p.Granted {
		parts = append(parts, "mc_granted")
	}
	if p.ImplicitRequest {
		parts = append(parts, "mc_implicit_request")
	}
	return strings.Join(parts, ";")
}

// ParseParams parses the value of an "a=fmtp:MCPTT" attribute (what follows "MCPTT ").
// Parameters it does not know are ignored, as SDP offer/answer requires of unknown fmtp
// parameters; a known one with a bad value is an error.
func ParseParams(s string) (Params, error) {
	var p Params
	if len(s) > maxFmtpBytes {
		return p, fmt.Errorf("%w: fmtp of %d bytes", ErrBadSDP, len(s))
	}
	if strings.TrimSpace(s) == "" {
		return p, nil
	}
	parts := strings.Split(s, ";")
	if len(parts) > maxParams {
		return p, fmt.Errorf("%w: %d fmtp parameters, at most %d", ErrBadSDP, len(parts), maxParams)
	}
	for _, part := range parts {
		name, value, hasValue := strings.Cut(strings.TrimSpace(part), "=")
		switch name {
		case "mc_queueing":
			p.Queueing = true
		case "mc_granted":
			p.Granted = true
		case "mc_implicit_request":
			p.ImplicitRequest = true
		case "mc_priority":
			n, err := strconv.Atoi(value)
			if !hasValue || err != nil || n < 1 || n > 255 {
				return p, fmt.Errorf("%w: mc_priority %q outside 1..255", ErrBadSDP, value)
			}
			p.Priority = uint8(n)
		case "":
			// "a;;b" or a trailing ";": nothing to read.
		}
	}
	return p, nil
}

// AnswerParams returns the parameters an answerer puts in its answer (§14): queueing
// when both sides support it, the offered priority capped by the local maximum, no
// implicit grant (the floor is granted by message, after the session is up).
func AnswerParams(offer, local Params) Params {
	a := Params{Queueing: offer.Queueing && local.Queueing}
	if offer.Priority > 0 {
		a.Priority = offer.Priority
		if local.Priority > 0 {
			a.Priority = min(offer.Priority, local.Priority)
		}
	}
	return a
}

// AppendMedia appends the floor control media description, the m= line and, when p is
// not empty, its fmtp line, each ended by CRLF:
//
//	m=application 20002 udp MCPTT
//	a=fmtp:MCPTT mc_queueing;mc_priority=5
func AppendMedia(b []byte, port int, p Params) []byte {
	b = fmt.Appendf(b, "m=%s %d %s %s\r\n", sdpMedia, port, sdpProto, sdpFormat)
	if s := p.String(); s != "" {
		b = fmt.Appendf(b, "a=fmtp:%s %s\r\n", sdpFormat, s)
	}
	return b
}

// Media is the floor control media description of an SDP body.
type Media struct {
	// Port is the UDP port floor control messages go to.
	Port int
	// Addr is the media-level c= address, else the session-level one; invalid when
	// neither is present.
	Addr netip.Addr
	// Params are the fmtp parameters; HasFmtp tells whether the attribute was there.
	Params  Params
	HasFmtp bool
}

// ParseMedia finds the first "m=application <port> udp MCPTT" description of an SDP body
// and parses its port, connection address and fmtp. A body without one, or whose one is
// refused (port 0), is ErrNoFloorControl; a malformed one is ErrBadSDP.
func ParseMedia(sdp []byte) (Media, error) {
	var (
		m                            Media
		sessAddr                     netip.Addr
		sawMedia, found, in, refused bool
	)
	if len(sdp) > maxSDPBytes {
		return m, fmt.Errorf("%w: %d bytes > %d", ErrBadSDP, len(sdp), maxSDPBytes)
	}
	for line := range bytes.Lines(sdp) {
		l := strings.TrimRight(string(line), "\r\n")
		if len(l) < 2 || l[1] != '=' {
			continue
		}
		v := l[2:]
		switch l[0] {
		case 'm':
			sawMedia = true
			if found {
				in = false
				continue
			}
			f := strings.Fields(v)
			if len(f) < 4 || f[0] != sdpMedia || !strings.EqualFold(f[2], sdpProto) || f[3] != sdpFormat {
				continue
			}
			port, err := parsePort(f[1])
			if err != nil {
				return m, err
			}
			found, in, refused, m.Port = true, true, port == 0, port
		case 'c':
			addr, err := parseConnAddr(v)
			if err != nil {
				return m, err
			}
			switch {
			case in:
				m.Addr = addr
			case !sawMedia:
				sessAddr = addr
			}
		case 'a':
			value, ok := strings.CutPrefix(v, "fmtp:"+sdpFormat)
			if !in || !ok || m.HasFmtp || (value != "" && value[0] != ' ' && value[0] != '\t') {
				continue
			}
			p, err := ParseParams(value)
			if err != nil {
				return m, err
			}
			m.Params, m.HasFmtp = p, true
		}
	}
	switch {
	case !found:
		return m, ErrNoFloorControl
	case refused:
		return m, fmt.Errorf("%w: the MCPTT media line has port 0 (refused)", ErrNoFloorControl)
	}
	if !m.Addr.IsValid() {
		m.Addr = sessAddr
	}
	return m, nil
}

// parsePort reads "<port>" or "<port>/<count>" (RFC 4566 §5.14).
func parsePort(s string) (int, error) {
	s, _, _ = strings.Cut(s, "/")
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("%w: port %q", ErrBadSDP, s)
	}
	return n, nil
}

// parseConnAddr reads "IN IP4 <addr>[/ttl]" or "IN IP6 <addr>" (RFC 4566 §5.7).
func parseConnAddr(v string) (netip.Addr, error) {
	f := strings.Fields(v)
	if len(f) != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return netip.Addr{}, fmt.Errorf("%w: c=%q", ErrBadSDP, v)
	}
	host, _, _ := strings.Cut(f[2], "/")
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Is4() != (f[1] == "IP4") {
		return netip.Addr{}, fmt.Errorf("%w: c= address %q", ErrBadSDP, f[2])
	}
	return addr, nil
}
