package edge

import "strconv"

// Stateless answers (RFC 3261 section 8.2.6 and 16.7's stateless proxy rules applied to a
// UAS): one response built from the request's own headers and sent once, with no
// transaction behind it. A retransmission of the request is answered again (it costs
// what the first did, and the limits count it), never by a timer of ours, so a spoofed
// source gets at most one response per request it did not send: the gateway is no
// reflector. The To tag is derived from the request, so every answer to one request
// carries the same tag.

// AppendAnswer appends to dst the response code reason to the request m scanned from b:
// its Via lines, From, To (with a tag of ours when it has none and code is final),
// Call-ID and CSeq as received, the extra header lines given ("Retry-After: 30"), and an
// empty body.
func AppendAnswer(dst, b []byte, m *Message, code int, reason string, extra ...string) []byte {
	dst = append(dst, "SIP/2.0 "...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, ' ')
	dst = append(dst, reason...)
	dst = append(dst, "\r\n"...)
	for _, v := range m.vias[:m.nvia] {
		dst = appendLine(dst, v.of(b))
	}
	dst = appendLine(dst, m.from.of(b))
	if m.toTag.end > m.toTag.start || code < 200 {
		dst = appendLine(dst, m.to.of(b))
	} else {
		dst = append(dst, trimEOL(m.to.of(b))...)
		dst = append(dst, ";tag="...)
		dst = appendTag(dst, b, m)
		dst = append(dst, "\r\n"...)
	}
	dst = appendLine(dst, m.callIDLine.of(b))
	dst = appendLine(dst, m.cseq.of(b))
	for _, h := range extra {
		dst = append(dst, h...)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "Content-Length: 0\r\n\r\n"...)
}

// appendLine appends a header line with a CRLF line end whatever it arrived with.
func appendLine(dst, line []byte) []byte {
	dst = append(dst, trimEOL(line)...)
	return append(dst, "\r\n"...)
}

// trimEOL returns line without its trailing CR and LF bytes.
func trimEOL(line []byte) []byte {
	for len(line) > 0 && (line[len(line)-1] == '\n' || line[len(line)-1] == '\r') {
		line = line[:len(line)-1]
	}
	return line
}

// appendTag appends our To tag for an answer to m: a hash of the Call-ID, the From tag
// and the top Via (whose branch names the transaction), in hex.
func appendTag(dst, b []byte, m *Message) []byte {
	const offset, prime = 14695981039346656037, 1099511628211 // FNV-1a, 64 bits
	h := uint64(offset)
	for _, p := range [][]byte{m.callID.of(b), m.fromTag.of(b), m.vias[0].of(b)} {
		for _, c := range p {
			h = (h ^ uint64(c)) * prime
		}
	}
	return strconv.AppendUint(dst, h, 16)
}

// AppendStripped appends b without its P-Asserted-Identity and P-Asserted-Service lines
// (m scanned from b): what a message from outside the trust domain is reduced to before
// anything reads it (RFC 3325 section 5).
func AppendStripped(dst, b []byte, m *Message) []byte {
	at := 0
	for _, s := range m.strip[:m.nstrip] {
		dst = append(dst, b[at:s.start]...)
		at = s.end
	}
	return append(dst, b[at:]...)
}
