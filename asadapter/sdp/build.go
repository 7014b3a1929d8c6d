package sdp

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

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
	ipv := "IP4"
	if ip := net.ParseIP(addr); ip != nil && ip.To4() == nil {
		ipv = "IP6"
	}
	fmt.Fprintf(b, "v=0\r\no=%s %d %d IN %s %s\r\ns=dsmgw\r\nc=IN %s %s\r\nt=0 0\r\n",
		user, o.Sess, o.Version, ipv, addr, ipv, addr)
}
