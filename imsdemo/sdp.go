package imsdemo

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"dsmgw/floorctl"
	"dsmgw/imsdemo/mixer"
)

// SDP offer/answer (RFC 3264) for audio: the first audio stream of an offer gets G.711
// (the offerer's first of PCMU and PCMA) and, if offered, telephone-event, which the
// mixer drops; in a talk group, the first MCPTT floor control stream gets our floor
// port (TS 24.380 section 14); every other stream is refused with port 0.

// Limits of the SDP parser: a body larger than an MTU-sized offer of many codecs, or
// more streams and formats than any phone sends, is refused rather than parsed.
const (
	maxSDPBytes   = 16 << 10
	maxSDPMedia   = 16
	maxSDPFormats = 64
)

// Direction is an SDP stream direction attribute.
type Direction string

// The four directions of RFC 3264 section 5.1.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// reverse is the direction an answer gives to an offered one.
func (d Direction) reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	}
	return d
}

// sends and receives say what the offerer does in that direction.
func (d Direction) sends() bool    { return d == SendRecv || d == SendOnly }
func (d Direction) receives() bool { return d == SendRecv || d == RecvOnly }

// sdpMedia is one m= line with what we need of its attributes.
type sdpMedia struct {
	kind    string // audio, video ...
	port    int
	proto   string
	formats []string
	rtpmap  map[string]string // format → "name/rate" (lower case name)
	conn    string            // c= of the stream, "" for the session's
	dir     Direction         // "" when not given
}

// sessionDesc is a parsed SDP body.
type sessionDesc struct {
	conn  string // session-level c= address
	dir   Direction
	media []sdpMedia
}

// parseSDP parses the parts of an SDP body that offer/answer for audio needs. Lines it
// does not know are skipped; a body that is not SDP, too large, or whose c= or m= lines
// are malformed is refused with ErrBadSDP and the reason.
func parseSDP(b []byte) (*sessionDesc, error) {
	if len(b) > maxSDPBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadSDP, len(b))
	}
	sd := &sessionDesc{}
	var cur *sdpMedia
	sawVersion := false
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: line %.40q", ErrBadSDP, line)
		}
		val := line[2:]
		switch line[0] {
		case 'v':
			if val != "0" {
				return nil, fmt.Errorf("%w: version %.16q", ErrBadSDP, val)
			}
			sawVersion = true
		case 'c':
			addr, err := parseConn(val)
			if err != nil {
				return nil, err
			}
			if cur != nil {
				cur.conn = addr
			} else {
				sd.conn = addr
			}
		case 'm':
			if len(sd.media) >= maxSDPMedia {
				return nil, fmt.Errorf("%w: more than %d streams", ErrBadSDP, maxSDPMedia)
			}
			m, err := parseMediaLine(val)
			if err != nil {
				return nil, err
			}
			sd.media = append(sd.media, m)
			cur = &sd.media[len(sd.media)-1]
		case 'a':
			name, arg, _ := strings.Cut(val, ":")
			switch Direction(name) {
			case SendRecv, SendOnly, RecvOnly, Inactive:
				if cur != nil {
					cur.dir = Direction(name)
				} else {
					sd.dir = Direction(name)
				}
				continue
			}
			if name == "rtpmap" && cur != nil {
				f, enc, ok := strings.Cut(arg, " ")
				if ok {
					cur.rtpmap[f] = strings.ToLower(strings.TrimSpace(enc))
				}
			}
		}
	}
	if !sawVersion {
		return nil, fmt.Errorf("%w: no v=0 line", ErrBadSDP)
	}
	return sd, nil
}

// parseConn parses "IN IP4 <addr>" (IPv6 too).
func parseConn(v string) (string, error) {
	f := strings.Fields(v)
	if len(f) < 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return "", fmt.Errorf("%w: c=%.40q", ErrBadSDP, v)
	}
	addr, _, _ := strings.Cut(f[2], "/") // multicast TTL suffix
	if _, err := netip.ParseAddr(addr); err != nil {
		return "", fmt.Errorf("%w: c= address %.40q", ErrBadSDP, f[2])
	}
	return addr, nil
}

// parseMediaLine parses "<media> <port>[/<n>] <proto> <fmt> ...".
func parseMediaLine(v string) (sdpMedia, error) {
	f := strings.Fields(v)
	if len(f) < 4 || len(f) > 3+maxSDPFormats {
		return sdpMedia{}, fmt.Errorf("%w: m=%.40q", ErrBadSDP, v)
	}
	ps, _, _ := strings.Cut(f[1], "/")
	port, err := strconv.Atoi(ps)
	if err != nil || port < 0 || port > 65535 {
		return sdpMedia{}, fmt.Errorf("%w: m= port %.16q", ErrBadSDP, f[1])
	}
	return sdpMedia{kind: f[0], port: port, proto: f[2], formats: f[3:], rtpmap: map[string]string{}}, nil
}

// codecOf returns the encoding "name/rate" of a format: its rtpmap, or the static
// payload types 0 and 8, which need none.
func (m *sdpMedia) codecOf(f string) string {
	if enc, ok := m.rtpmap[f]; ok {
		name, rate, _ := strings.Cut(enc, "/")
		rate, _, _ = strings.Cut(rate, "/") // channels
		return name + "/" + rate
	}
	switch f {
	case "0":
		return "pcmu/8000"
	case "8":
		return "pcma/8000"
	}
	return ""
}

// negotiated is the outcome of an offer: what the answer says and how media flows.
type negotiated struct {
	index   int // the audio stream's m= line
	codec   mixer.Codec
	pt      int // payload type of the codec in the offer
	eventPT int // telephone-event payload type, -1 when not offered
	dir     Direction
	// remote is where to send RTP; not valid when the offerer gives no address (a hold
	// with c=0.0.0.0, or port 0).
	remote netip.AddrPort
}

// negotiate picks the first audio stream of RTP/AVP (or AVPF) with PCMU or PCMA. It
// returns ErrNotAcceptable when there is none.
func negotiate(sd *sessionDesc) (negotiated, error) {
	for i := range sd.media {
		m := &sd.media[i]
		if m.kind != "audio" || m.port == 0 || (m.proto != "RTP/AVP" && m.proto != "RTP/AVPF") {
			continue
		}
		n := negotiated{index: i, pt: -1, eventPT: -1}
		for _, f := range m.formats {
			pt, err := strconv.Atoi(f)
			if err != nil || pt < 0 || pt > 127 {
				continue
			}
			switch c := m.codecOf(f); c {
			case "pcmu/8000", "pcma/8000":
				if n.pt < 0 {
					n.pt = pt
					n.codec, _ = mixer.CodecByName(c[:4])
				}
			case "telephone-event/8000":
				if n.eventPT < 0 {
					n.eventPT = pt
				}
			}
		}
		if n.pt < 0 {
			continue
		}
		if n.pt != int(n.codec.PayloadType()) {
			// G.711 under a dynamic payload type: legal, but the mixer keys the law on
			// the static numbers its packets carry.
			continue
		}
		n.dir = m.dir
		if n.dir == "" {
			n.dir = sd.dir
		}
		if n.dir == "" {
			n.dir = SendRecv
		}
		conn := m.conn
		if conn == "" {
			conn = sd.conn
		}
		if a, err := netip.ParseAddr(conn); err == nil && !a.IsUnspecified() {
			n.remote = netip.AddrPortFrom(a.Unmap(), uint16(m.port))
		}
		return n, nil
	}
	return negotiated{}, ErrNotAcceptable
}

// floorAnswer is our side of a talk group's floor control stream in an answer.
type floorAnswer struct {
	port   int             // our floor port; 0: no floor control (every MCPTT line refused)
	params floorctl.Params // the fmtp of our answer (floorctl.AnswerParams)
}

// isFloorStream reports whether an m= line is MCPTT floor control ("m=application <port>
// udp MCPTT"), as floorctl.ParseMedia finds it.
func (m *sdpMedia) isFloorStream() bool {
	return m.kind == "application" && strings.EqualFold(m.proto, "udp") && len(m.formats) > 0 &&
		m.formats[0] == "MCPTT"
}

// answerSDP renders the answer to offer: our address and port for the negotiated audio
// stream and, when fa has a port, for the first offered floor control stream; port 0
// for every other stream (RFC 3264 section 6).
func answerSDP(offer *sessionDesc, n negotiated, fa floorAnswer, host string, port int, sessID, version uint64) []byte {
	var b strings.Builder
	ipv := "IP4"
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && !a.Is4In6() {
		ipv = "IP6"
	}
	fmt.Fprintf(&b, "v=0\r\no=imsdemo %d %d IN %s %s\r\ns=imsdemo\r\nc=IN %s %s\r\nt=0 0\r\n",
		sessID, version, ipv, host, ipv, host)
	floorDone := fa.port == 0
	for i, m := range offer.media {
		if i != n.index {
			if !floorDone && m.isFloorStream() {
				b.Write(floorctl.AppendMedia(nil, fa.port, fa.params))
				floorDone = true
				continue
			}
			fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", m.kind, m.proto, strings.Join(m.formats, " "))
			continue
		}
		fmt.Fprintf(&b, "m=audio %d %s %d", port, m.proto, n.pt)
		if n.eventPT >= 0 {
			fmt.Fprintf(&b, " %d", n.eventPT)
		}
		fmt.Fprintf(&b, "\r\na=rtpmap:%d %s/8000\r\n", n.pt, n.codec)
		if n.eventPT >= 0 {
			fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", n.eventPT, n.eventPT)
		}
		fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", n.dir.reverse())
	}
	return []byte(b.String())
}

// offerSDP renders our offer for a re-INVITE that came without one (a session refresh):
// the stream as it is (and the floor control stream of a talk group), so the answer in
// the ACK can only confirm or change the direction and address.
func offerSDP(host string, port int, fa floorAnswer, codec mixer.Codec, eventPT int, dir Direction, sessID, version uint64) []byte {
	offer := &sessionDesc{media: []sdpMedia{{kind: "audio", proto: "RTP/AVP"}}}
	if fa.port > 0 {
		offer.media = append(offer.media, sdpMedia{kind: "application", proto: "udp", formats: []string{"MCPTT"}})
	}
	n := negotiated{index: 0, codec: codec, pt: int(codec.PayloadType()), eventPT: eventPT, dir: dir.reverse()}
	return answerSDP(offer, n, fa, host, port, sessID, version)
}
