package sdp

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Remote is the negotiated far end of a call's media: what the media gateway's termination
// sends to and which payload types it may use.
//
// Call control keeps it in its dialog record (a takeover re-offers its codecs), hence
// the JSON names.
type Remote struct {
	Addr      string        `json:"addr"`          // RTP address of the far end
	Port      int           `json:"port"`          // RTP port of the far end (0: no media, as after a hold with port 0)
	Payloads  []PayloadType `json:"pts,omitempty"` // negotiated payload types, preferred first
	Direction Direction     `json:"dir,omitempty"` // media direction seen from the gateway (hold: sendonly/inactive)
}

// PayloadType is one negotiated RTP payload type.
type PayloadType struct {
	PT        uint8  `json:"pt"`
	Name      string `json:"name"` // "PCMU", "PCMA", "telephone-event"
	ClockRate int    `json:"rate"`
}

// Held reports whether the far end holds the call: the stream is not sendrecv, or it has
// no address to send to.
func (r Remote) Held() bool { return r.Direction != SendRecv || r.Port == 0 }

// Sends reports whether the gateway may send to the far end: the stream is sendrecv or
// sendonly (seen from the gateway) and has an address. Unlike Held it is true when we
// hold the call (our a=sendonly answered a=recvonly): the far end still takes our media
// (music on hold), only the page stops sending.
func (r Remote) Sends() bool {
	return r.Port != 0 && (r.Direction == SendRecv || r.Direction == SendOnly)
}

// Same reports whether r and o describe the same media (address, port, direction and
// payload types in order): a re-offer that changes none of them keeps our SDP version.
func (r Remote) Same(o Remote) bool {
	if r.Addr != o.Addr || r.Port != o.Port || r.Direction != o.Direction || len(r.Payloads) != len(o.Payloads) {
		return false
	}
	for i := range r.Payloads {
		if r.Payloads[i] != o.Payloads[i] {
			return false
		}
	}
	return true
}

// NegotiateOffer checks an offer and returns the chosen audio stream (the index to give
// Answer) and the remote side the gateway should use (our direction is the reverse of
// the offered one).
func NegotiateOffer(offer *Session) (int, Remote, error) {
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

// NegotiateAnswer reads the answer to our offer.
func NegotiateAnswer(ans *Session) (Remote, error) {
	i := ans.audio()
	if i < 0 {
		return Remote{}, fmt.Errorf("%w: no RTP audio stream in answer", ErrNoCodec)
	}
	if ans.Media[i].Port == 0 {
		return Remote{}, fmt.Errorf("%w: audio stream rejected", ErrNoCodec)
	}
	return remoteOf(ans, i, ans.direction(&ans.Media[i]).reverse())
}

// supported reports whether the gateway handles an encoding (names compare
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
func remoteOf(sd *Session, i int, dir Direction) (Remote, error) {
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
		return Remote{}, fmt.Errorf("%w: connection address %.60q is not an IP address", ErrMalformed, addr)
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
		return Remote{}, fmt.Errorf("%w: no connection address", ErrMalformed)
	}
	return r, nil
}

func canonicalName(n string) string {
	if strings.EqualFold(n, "telephone-event") {
		return "telephone-event"
	}
	return strings.ToUpper(n)
}

// The payload types we offer. 101 for telephone-event is the common dynamic choice; an
// answer may use any number the offerer picked.
const (
	ptPCMU           = 0
	ptPCMA           = 8
	ptTelephoneEvent = 101
)

// Origin is the o= line state of our side of a session: the version goes up with every
// changed description we send (RFC 3264 section 8). Call control stores it in its dialog
// record, hence the JSON names.
type Origin struct {
	Sess    uint64 `json:"sess"`
	Version uint64 `json:"ver"`
	// Addr is the o= line's address, fixed for the session's life (RFC 3264 section 8:
	// a later description repeats the o= line but for the version), so a gateway
	// instance that takes a call over writes the first instance's address there; ""
	// writes the description's own address.
	Addr string `json:"addr,omitempty"`
}

// Offer builds our offer for RTP at addr:port: one audio stream with PCMU and PCMA (the
// browser's preferred encoding first) and telephone-event.
func Offer(o Origin, user, addr string, port int, prefer string, dir Direction) []byte {
	voice := []int{ptPCMU, ptPCMA}
	if strings.EqualFold(prefer, "PCMA") {
		voice = []int{ptPCMA, ptPCMU}
	}
	var b strings.Builder
	writeSessionHead(&b, o, user, addr)
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %d %d %d\r\n", port, voice[0], voice[1], ptTelephoneEvent)
	b.WriteString("a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n")
	fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\na=fmtp:%d 0-16\r\n", ptTelephoneEvent, ptTelephoneEvent)
	b.WriteString("a=ptime:20\r\n")
	fmt.Fprintf(&b, "a=%s\r\n", dir)
	return []byte(b.String())
}

// Answer builds our answer to an offer per RFC 3264 for RTP at addr:port: as many m= lines
// as offered, every stream but the chosen audio one (NegotiateOffer's index) rejected with
// port 0, the chosen one with the codecs we accepted (r.Payloads, the offerer's numbers)
// and the reversed direction.
func Answer(o Origin, user, addr string, port int, offer *Session, chosen int, r Remote) []byte {
	var b strings.Builder
	writeSessionHead(&b, o, user, addr)
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
		fmt.Fprintf(&b, "m=audio %d %s %s\r\n", port, m.Proto, strings.Join(pts, " "))
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

func writeSessionHead(b *strings.Builder, o Origin, user, addr string) {
	oaddr := o.Addr
	if oaddr == "" {
		oaddr = addr
	}
	fmt.Fprintf(b, "v=0\r\no=%s %d %d IN %s %s\r\ns=dsmgw\r\nc=IN %s %s\r\nt=0 0\r\n",
		user, o.Sess, o.Version, ipVersion(oaddr), oaddr, ipVersion(addr), addr)
}

// ipVersion is the SDP address type of addr.
func ipVersion(addr string) string {
	if ip := net.ParseIP(addr); ip != nil && ip.To4() == nil {
		return "IP6"
	}
	return "IP4"
}

// Reoffer builds a new offer in a running session for RTP at addr:port, with the codecs
// the session negotiated (r.Payloads, their numbers as agreed) and direction dir: what a
// gateway instance that took the call over sends to move the media to itself. Without
// negotiated codecs it offers what Offer does.
func Reoffer(o Origin, user, addr string, port int, r Remote, dir Direction) []byte {
	if len(r.Payloads) == 0 {
		return Offer(o, user, addr, port, "", dir)
	}
	var b strings.Builder
	writeSessionHead(&b, o, user, addr)
	pts := make([]string, 0, len(r.Payloads))
	for _, p := range r.Payloads {
		pts = append(pts, strconv.Itoa(int(p.PT)))
	}
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %s\r\n", port, strings.Join(pts, " "))
	for _, p := range r.Payloads {
		fmt.Fprintf(&b, "a=rtpmap:%d %s/%d\r\n", p.PT, p.Name, p.ClockRate)
		if p.Name == "telephone-event" {
			fmt.Fprintf(&b, "a=fmtp:%d 0-16\r\n", p.PT)
		}
	}
	b.WriteString("a=ptime:20\r\n")
	fmt.Fprintf(&b, "a=%s\r\n", dir)
	return []byte(b.String())
}
