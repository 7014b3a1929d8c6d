package asadapter

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Direction is an SDP media direction attribute (RFC 3264 section 5.1).
type Direction string

// The SDP directions.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// reverse is the direction an answerer takes for an offered direction.
func (d Direction) reverse() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	}
	return SendRecv
}

// Limits on SDP from the network: real offers are well under 2 KB with a few streams and
// a dozen formats; the limits keep a hostile body from costing memory.
const (
	maxSDPBytes   = 16 << 10
	maxSDPMedia   = 16
	maxSDPFormats = 64
)

// The payload types the adapter offers. 101 for telephone-event is the common dynamic
// choice; an answer may use any number the offerer picked.
const (
	ptPCMU           = 0
	ptPCMA           = 8
	ptTelephoneEvent = 101
)

// SessionDesc is the part of an SDP session description (RFC 4566) the adapter uses.
type SessionDesc struct {
	OriginUser    string
	OriginSess    uint64
	OriginVersion uint64
	OriginAddr    string
	Conn          string // session-level c= address
	Direction     Direction
	Media         []MediaDesc
}

// MediaDesc is one m= section.
type MediaDesc struct {
	Type      string // audio, video ...
	Port      int
	Proto     string
	Formats   []string // as written in m= (payload type numbers for RTP)
	Conn      string   // media-level c= address ("" → session level)
	RTPMap    map[string]string
	Fmtp      map[string]string
	Direction Direction // "" when absent (then the session level, then sendrecv)
	Ptime     int
}

// ParseSDP parses an SDP body. It is lenient about lines it does not need and strict
// about those it uses; every error wraps ErrBadSDP.
func ParseSDP(b []byte) (*SessionDesc, error) {
	if len(b) > maxSDPBytes {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrBadSDP, len(b), maxSDPBytes)
	}
	sd := &SessionDesc{}
	var m *MediaDesc
	sawV := false
	for n, raw := range bytes.Split(b, []byte("\n")) {
		line := strings.TrimRight(string(raw), "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: line %d: %.40q", ErrBadSDP, n+1, line)
		}
		k, v := line[0], line[2:]
		if !sawV {
			if k != 'v' || v != "0" {
				return nil, fmt.Errorf("%w: must start with v=0", ErrBadSDP)
			}
			sawV = true
			continue
		}
		switch k {
		case 'o':
			f := strings.Fields(v)
			if len(f) != 6 {
				return nil, fmt.Errorf("%w: o= needs 6 fields: %.60q", ErrBadSDP, v)
			}
			sd.OriginUser, sd.OriginAddr = f[0], f[5]
			sd.OriginSess, _ = strconv.ParseUint(f[1], 10, 64)
			sd.OriginVersion, _ = strconv.ParseUint(f[2], 10, 64)
		case 'c':
			addr, err := parseConn(v)
			if err != nil {
				return nil, err
			}
			if m != nil {
				m.Conn = addr
			} else {
				sd.Conn = addr
			}
		case 'm':
			if len(sd.Media) >= maxSDPMedia {
				return nil, fmt.Errorf("%w: more than %d media", ErrBadSDP, maxSDPMedia)
			}
			md, err := parseMedia(v)
			if err != nil {
				return nil, err
			}
			sd.Media = append(sd.Media, md)
			m = &sd.Media[len(sd.Media)-1]
		case 'a':
			name, val, _ := strings.Cut(v, ":")
			switch name {
			case string(SendRecv), string(SendOnly), string(RecvOnly), string(Inactive):
				if m != nil {
					m.Direction = Direction(name)
				} else {
					sd.Direction = Direction(name)
				}
			case "rtpmap", "fmtp":
				if m == nil {
					continue
				}
				pt, rest, ok := strings.Cut(val, " ")
				if !ok || pt == "" {
					return nil, fmt.Errorf("%w: a=%s:%.40q", ErrBadSDP, name, val)
				}
				if name == "rtpmap" {
					m.RTPMap[pt] = strings.TrimSpace(rest)
				} else {
					m.Fmtp[pt] = strings.TrimSpace(rest)
				}
			case "ptime":
				if m != nil {
					m.Ptime, _ = strconv.Atoi(strings.TrimSpace(val))
				}
			}
		}
	}
	if !sawV {
		return nil, fmt.Errorf("%w: empty", ErrBadSDP)
	}
	return sd, nil
}

func parseConn(v string) (string, error) {
	f := strings.Fields(v)
	if len(f) != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return "", fmt.Errorf("%w: c=%.60q", ErrBadSDP, v)
	}
	addr, _, _ := strings.Cut(f[2], "/") // multicast TTL
	if addr == "" {
		return "", fmt.Errorf("%w: c= without address", ErrBadSDP)
	}
	return addr, nil
}

func parseMedia(v string) (MediaDesc, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return MediaDesc{}, fmt.Errorf("%w: m=%.60q", ErrBadSDP, v)
	}
	portStr, _, _ := strings.Cut(f[1], "/")
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return MediaDesc{}, fmt.Errorf("%w: m= port %.20q", ErrBadSDP, f[1])
	}
	if len(f)-3 > maxSDPFormats {
		return MediaDesc{}, fmt.Errorf("%w: more than %d formats", ErrBadSDP, maxSDPFormats)
	}
	return MediaDesc{
		Type: f[0], Port: port, Proto: f[2], Formats: append([]string(nil), f[3:]...),
		RTPMap: map[string]string{}, Fmtp: map[string]string{},
	}, nil
}

// codecOf returns the encoding name and clock rate of a format of m (static types 0 and
// 8 need no rtpmap).
func (m *MediaDesc) codecOf(format string) (string, int) {
	if r, ok := m.RTPMap[format]; ok {
		name, rest, _ := strings.Cut(r, "/")
		rateStr, _, _ := strings.Cut(rest, "/")
		rate, _ := strconv.Atoi(rateStr)
		return name, rate
	}
	switch format {
	case "0":
		return "PCMU", 8000
	case "8":
		return "PCMA", 8000
	}
	return "", 0
}

// direction is the effective direction of m.
func (sd *SessionDesc) direction(m *MediaDesc) Direction {
	if m.Direction != "" {
		return m.Direction
	}
	if sd.Direction != "" {
		return sd.Direction
	}
	return SendRecv
}

// audio returns the index of the first audio stream over RTP/AVP, or -1.
func (sd *SessionDesc) audio() int {
	for i := range sd.Media {
		if sd.Media[i].Type == "audio" && strings.HasPrefix(sd.Media[i].Proto, "RTP/") {
			return i
		}
	}
	return -1
}

// supported reports whether the adapter handles an encoding (names compare
// case-insensitively, as RFC 4855 says).
func supported(name string, rate int) bool {
	switch strings.ToUpper(name) {
	case "PCMU", "PCMA", "TELEPHONE-EVENT":
		return rate == 8000
	}
	return false
}

// remoteOf turns the audio stream of an answer (or offer) into the media gateway's
// remote side, keeping the payload types we support in the peer's order. dir is the
// direction the gateway takes.
func remoteOf(sd *SessionDesc, i int, dir Direction) (Remote, error) {
	m := &sd.Media[i]
	addr := m.Conn
	if addr == "" {
		addr = sd.Conn
	}
	r := Remote{Addr: addr, Port: m.Port, Direction: dir}
	if addr == "0.0.0.0" || addr == "::" {
		// RFC 2543 hold: no address to send to.
		r.Port = 0
		if dir == SendRecv || dir == SendOnly {
			r.Direction = dir.withoutSend()
		}
	} else if net.ParseIP(addr) == nil && addr != "" && m.Port != 0 {
		return Remote{}, fmt.Errorf("%w: connection address %.60q is not an IP address", ErrBadSDP, addr)
	}
	voice := false
	for _, f := range m.Formats {
		name, rate := m.codecOf(f)
		if !supported(name, rate) {
			continue
		}
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		r.Payloads = append(r.Payloads, PayloadType{PT: uint8(pt), Name: canonicalName(name), ClockRate: rate})
		if !strings.EqualFold(name, "telephone-event") {
			voice = true
		}
	}
	if !voice {
		return Remote{}, fmt.Errorf("%w: offered %v", ErrNoCodec, m.Formats)
	}
	if r.Addr == "" && r.Port != 0 {
		return Remote{}, fmt.Errorf("%w: no connection address", ErrBadSDP)
	}
	return r, nil
}

func (d Direction) withoutSend() Direction {
	if d == SendRecv {
		return RecvOnly
	}
	return Inactive
}

func canonicalName(n string) string {
	if strings.EqualFold(n, "telephone-event") {
		return "telephone-event"
	}
	return strings.ToUpper(n)
}

// origin is the o= line state of our side of a session: the version goes up with every
// changed description we send (RFC 3264 section 8).
type origin struct {
	Sess    uint64 `json:"sess"`
	Version uint64 `json:"ver"`
}

// offerSDP builds our offer: one audio stream with PCMU and PCMA (the browser's preferred
// encoding first) and telephone-event.
func offerSDP(o origin, user string, l Local, prefer string, dir Direction) []byte {
	voice := []string{"0", "8"}
	if strings.EqualFold(prefer, "PCMA") {
		voice = []string{"8", "0"}
	}
	var b strings.Builder
	writeSessionHead(&b, o, user, l.Addr)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s %s %d\r\n", l.Port, voice[0], voice[1], ptTelephoneEvent)
	b.WriteString("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
	fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", ptTelephoneEvent, ptTelephoneEvent)
	b.WriteString("a=ptime:20\r\n")
	fmt.Fprintf(&b, "a=%s\r\n", dir)
	return []byte(b.String())
}

// answerSDP builds our answer to an offer per RFC 3264: as many m= lines as offered,
// every stream but the chosen audio one rejected with port 0, the chosen one with the
// codecs we accepted (r.Payloads, the offerer's numbers) and the reversed direction.
func answerSDP(o origin, user string, l Local, offer *SessionDesc, chosen int, r Remote) []byte {
	var b strings.Builder
	writeSessionHead(&b, o, user, l.Addr)
	for i := range offer.Media {
		m := &offer.Media[i]
		if i != chosen {
			fmts := "0"
			if len(m.Formats) > 0 {
				fmts = m.Formats[0]
			}
			fmt.Fprintf(&b, "m=%s 0 %s %s\r\n", m.Type, m.Proto, fmts)
			continue
		}
		pts := make([]string, 0, len(r.Payloads))
		for _, p := range r.Payloads {
			pts = append(pts, strconv.Itoa(int(p.PT)))
		}
		fmt.Fprintf(&b, "m=audio %d %s %s\r\n", l.Port, m.Proto, strings.Join(pts, " "))
		for _, p := range r.Payloads {
			fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", p.PT, p.Name, p.ClockRate)
			if p.Name == "telephone-event" {
				fmt.Fprintf(&b, "a=fmtp:%d 0-16\r\n", p.PT)
			}
		}
		b.WriteString("a=ptime:20\r\n")
		fmt.Fprintf(&b, "a=%s\r\n", r.Direction)
	}
	return []byte(b.String())
}

func writeSessionHead(b *strings.Builder, o origin, user, addr string) {
	ipv := "IP4"
	if ip := net.ParseIP(addr); ip != nil && ip.To4() == nil {
		ipv = "IP6"
	}
	fmt.Fprintf(b, "v=0\r\no=%s %d %d IN %s %s\r\ns=dsmgw\r\nc=IN %s %s\r\nt=0 0\r\n",
		user, o.Sess, o.Version, ipv, addr, ipv, addr)
}

// negotiateOffer checks an offer and returns the chosen audio stream and the remote side
// the gateway should use (our direction is the reverse of the offered one).
func negotiateOffer(offer *SessionDesc) (int, Remote, error) {
	i := offer.audio()
	if i < 0 {
		return -1, Remote{}, fmt.Errorf("%w: no RTP audio stream", ErrNoCodec)
	}
	dir := offer.direction(&offer.Media[i]).reverse()
	r, err := remoteOf(offer, i, dir)
	if err != nil {
		return -1, Remote{}, err
	}
	// Keep at most one voice codec (the offerer's first we support) and telephone-event:
	// the gateway sends one codec, and RFC 3264 lets the answer narrow the list.
	var keep []PayloadType
	voice := false
	for _, p := range r.Payloads {
		if p.Name == "telephone-event" {
			keep = append(keep, p)
		} else if !voice {
			keep = append(keep, p)
			voice = true
		}
	}
	r.Payloads = keep
	return i, r, nil
}

// negotiateAnswer reads the answer to our offer.
func negotiateAnswer(ans *SessionDesc) (Remote, error) {
	i := ans.audio()
	if i < 0 {
		return Remote{}, fmt.Errorf("%w: no RTP audio stream in answer", ErrNoCodec)
	}
	if ans.Media[i].Port == 0 {
		return Remote{}, fmt.Errorf("%w: audio stream rejected", ErrNoCodec)
	}
	return remoteOf(ans, i, ans.direction(&ans.Media[i]).reverse())
}
