// Package sdp is the gateway's SDP offer/answer (RFC 3264 over RFC 4566): it parses the
// bodies SIP peers send, negotiates one audio stream with the codecs the media gateway
// handles (PCMU, PCMA, telephone-event) and writes our offers and answers. It is pure: no
// I/O, no state, no call control.
package sdp

import (
	"bytes"
	"fmt"
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

// withoutSend is d without its sending half (a stream with no address to send to).
func (d Direction) withoutSend() Direction {
	if d == SendRecv {
		return RecvOnly
	}
	return Inactive
}

// Limits on SDP from the network: real offers are well under 2 KB with a few streams and
// a dozen formats; the limits keep a hostile body from costing memory.
const (
	maxBytes   = 16 << 10
	maxMedia   = 16
	maxFormats = 64
)

// Session is the part of an SDP session description (RFC 4566) the gateway uses.
type Session struct {
	OriginUser    string
	OriginSess    uint64
	OriginVersion uint64
	OriginAddr    string
	Conn          string // session-level c= address
	Direction     Direction
	Media         []Media
}

// Media is one m= section.
type Media struct {
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

// Parse parses an SDP body. It is lenient about lines it does not need and strict about
// those it uses; every error wraps ErrMalformed.
func Parse(b []byte) (*Session, error) {
	if len(b) > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes > %d", ErrMalformed, len(b), maxBytes)
	}
	sd := &Session{}
	var m *Media
	sawV := false
	for n, raw := range bytes.Split(b, []byte("\n")) {
		line := strings.TrimRight(string(raw), "\r")
		if line == "" {
			continue
		}
		if len(line) < 2 || line[1] != '=' {
			return nil, fmt.Errorf("%w: line %d: %.40q", ErrMalformed, n+1, line)
		}
		k, v := line[0], line[2:]
		if !sawV {
			if k != 'v' || v != "0" {
				return nil, fmt.Errorf("%w: must start with v=0", ErrMalformed)
			}
			sawV = true
			continue
		}
		var err error
		m, err = sd.parseLine(m, k, v)
		if err != nil {
			return nil, err
		}
	}
	if !sawV {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	return sd, nil
}

// parseLine applies one line after v=0 to sd; m is the current m= section (nil before the
// first), and the one after the line is returned.
func (sd *Session) parseLine(m *Media, k byte, v string) (*Media, error) {
	switch k {
	case 'o':
		f := strings.Fields(v)
		if len(f) != 6 {
			return nil, fmt.Errorf("%w: o= needs 6 fields: %.60q", ErrMalformed, v)
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
		if len(sd.Media) >= maxMedia {
			return nil, fmt.Errorf("%w: more than %d media", ErrMalformed, maxMedia)
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
				return m, nil
			}
			pt, rest, ok := strings.Cut(val, " ")
			if !ok || pt == "" {
				return nil, fmt.Errorf("%w: a=%s:%.40q", ErrMalformed, name, val)
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
	return m, nil
}

func parseConn(v string) (string, error) {
	f := strings.Fields(v)
	if len(f) != 3 || f[0] != "IN" || (f[1] != "IP4" && f[1] != "IP6") {
		return "", fmt.Errorf("%w: c=%.60q", ErrMalformed, v)
	}
	addr, _, _ := strings.Cut(f[2], "/") // multicast TTL
	if addr == "" {
		return "", fmt.Errorf("%w: c= without address", ErrMalformed)
	}
	return addr, nil
}

func parseMedia(v string) (Media, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Media{}, fmt.Errorf("%w: m=%.60q", ErrMalformed, v)
	}
	portStr, _, _ := strings.Cut(f[1], "/")
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return Media{}, fmt.Errorf("%w: m= port %.20q", ErrMalformed, f[1])
	}
	if len(f)-3 > maxFormats {
		return Media{}, fmt.Errorf("%w: more than %d formats", ErrMalformed, maxFormats)
	}
	return Media{
		Type: f[0], Port: port, Proto: f[2], Formats: append([]string(nil), f[3:]...),
		RTPMap: map[string]string{}, Fmtp: map[string]string{},
	}, nil
}

// codecOf returns the encoding name and clock rate of a format of m (static types 0 and
// 8 need no rtpmap).
func (m *Media) codecOf(format string) (string, int) {
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
func (sd *Session) direction(m *Media) Direction {
	if m.Direction != "" {
		return m.Direction
	}
	if sd.Direction != "" {
		return sd.Direction
	}
	return SendRecv
}

// audio returns the index of the first audio stream over RTP/AVP, or -1.
func (sd *Session) audio() int {
	for i := range sd.Media {
		if sd.Media[i].Type == "audio" && strings.HasPrefix(sd.Media[i].Proto, "RTP/") {
			return i
		}
	}
	return -1
}
