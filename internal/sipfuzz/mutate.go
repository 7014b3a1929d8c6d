package sipfuzz

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/edge"
)

// Mutator makes the messages of a run from the seeds: a quarter as the seeds are (filled
// in), the rest with one to four mutations, from a flipped byte to a spliced header
// section. It is deterministic for a given seed value, so a run can be replayed.
type Mutator struct {
	r     *rand.Rand
	seeds []Seed
}

// NewMutator returns a mutator over seeds, its choices drawn from seed.
func NewMutator(seeds []Seed, seed uint64) *Mutator {
	return &Mutator{r: rand.New(rand.NewPCG(seed, seed^0x5eed)), seeds: seeds}
}

// method is what a mutated start line may say instead: a method, or not quite one.
func (m *Mutator) method() string {
	all := []string{"INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "SUBSCRIBE", "NOTIFY",
		"INFO", "UPDATE", "REFER", "MESSAGE", "PRACK", "PUBLISH", "FOO", "invite", "I-N-V"}
	return all[m.r.IntN(len(all))]
}

// Next returns the next message for t.
func (m *Mutator) Next(t Target) []byte {
	s := m.seeds[m.r.IntN(len(m.seeds))]
	b := []byte(Fill(s.Text, t))
	if m.r.IntN(4) == 0 {
		return b
	}
	for range 1 + m.r.IntN(4) {
		b = m.mutate(b, t)
	}
	return b
}

// mutate applies one mutation.
func (m *Mutator) mutate(b []byte, t Target) []byte {
	if len(b) == 0 {
		return []byte("\r\n")
	}
	r := m.r
	lines := bytes.Split(b, []byte("\r\n"))
	switch r.IntN(14) {
	case 0: // flip a byte
		b[r.IntN(len(b))] ^= byte(1 << r.IntN(8))
	case 1: // insert random bytes
		i := r.IntN(len(b) + 1)
		junk := make([]byte, 1+r.IntN(16))
		for k := range junk {
			junk[k] = byte(r.IntN(256))
		}
		b = append(b[:i:i], append(junk, b[i:]...)...)
	case 2: // delete a range
		i := r.IntN(len(b))
		j := min(len(b), i+1+r.IntN(32))
		b = append(b[:i:i], b[j:]...)
	case 3: // duplicate a line
		i := r.IntN(len(lines))
		lines = append(lines[:i+1:i+1], append([][]byte{lines[i]}, lines[i+1:]...)...)
		b = bytes.Join(lines, []byte("\r\n"))
	case 4: // drop a line
		i := r.IntN(len(lines))
		lines = append(lines[:i:i], lines[i+1:]...)
		b = bytes.Join(lines, []byte("\r\n"))
	case 5: // swap two lines
		i, j := r.IntN(len(lines)), r.IntN(len(lines))
		lines[i], lines[j] = lines[j], lines[i]
		b = bytes.Join(lines, []byte("\r\n"))
	case 6: // a header's value becomes long, or junk
		i := 1 + r.IntN(max(1, len(lines)-1))
		if i < len(lines) {
			if n, _, ok := bytes.Cut(lines[i], []byte(":")); ok {
				v := strings.Repeat("A", 1+r.IntN(3000))
				if r.IntN(2) == 0 {
					v = `"<;tag=,>"` + string(rune(r.IntN(0x10FFFF)))
				}
				lines[i] = append(append(n, ": "...), v...)
			}
		}
		b = bytes.Join(lines, []byte("\r\n"))
	case 7: // splice another seed's header section
		o := []byte(Fill(m.seeds[r.IntN(len(m.seeds))].Text, t))
		if h, _, ok := bytes.Cut(o, []byte("\r\n\r\n")); ok {
			if _, body, ok := bytes.Cut(b, []byte("\r\n\r\n")); ok {
				b = append(append(h, "\r\n\r\n"...), body...)
			}
		}
	case 8: // truncate
		b = b[:r.IntN(len(b))]
	case 9: // a bare CR or LF
		i := r.IntN(len(b) + 1)
		b = append(b[:i:i], append([]byte{"\r\n"[r.IntN(2)]}, b[i:]...)...)
	case 10: // another method on the start line
		if sp := bytes.IndexByte(b, ' '); sp > 0 && !bytes.HasPrefix(b, []byte("SIP/")) {
			b = append([]byte(m.method()), b[sp:]...)
		}
	case 11: // another Content-Length
		b = bytes.Replace(b, []byte("Content-Length: "), []byte("Content-Length: "+strconv.Itoa(r.IntN(70000))+"0"), 1)
	case 12: // identity headers and Vias a scanner or a forger adds
		extra := []string{`P-Asserted-Identity: "Bank" <sip:bank@bank.example>`, "P-Asserted-Service: urn:x",
			"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-x", "To: <sip:other@x>;tag=dup", "Authorization: Digest x"}
		i := 1 + r.IntN(max(1, len(lines)-1))
		lines = append(lines[:i:i], append([][]byte{[]byte(extra[r.IntN(len(extra))])}, lines[i:]...)...)
		b = bytes.Join(lines, []byte("\r\n"))
	case 13: // another user: a scan
		b = bytes.ReplaceAll(b, []byte(t.User+"@"), []byte("u"+strconv.Itoa(r.IntN(1e6))+"@"))
	}
	return b
}

// Expected is what WellFormed found in a request that must be answered.
type Expected struct {
	Branch string
	Req    *sip.Request
}

// WellFormed reports whether b is a request the gateway must answer when sent by local
// over transport: sipgo reads it as a request other than ACK with a Via of local over
// that transport with a branch, From with a tag, To, Call-ID and a CSeq of its method,
// no Max-Forwards of 0, a body of its Content-Length, and small enough for a response to
// go back over UDP, which the SIP edge reads too.
func WellFormed(b []byte, local, transport string) (Expected, bool) {
	if len(b) > 1300 {
		return Expected{}, false
	}
	msg, err := sip.ParseMessage(b)
	if err != nil {
		return Expected{}, false
	}
	req, ok := msg.(*sip.Request)
	if !ok || req.Method == sip.ACK || (req.Recipient.Scheme != "sip" && req.Recipient.Scheme != "sips") {
		return Expected{}, false
	}
	via, from, cseq := req.Via(), req.From(), req.CSeq()
	if via == nil || from == nil || req.To() == nil || req.CallID() == nil || cseq == nil ||
		cseq.MethodName != req.Method || req.CallID().Value() == "" {
		return Expected{}, false
	}
	if tag, _ := from.Params.Get("tag"); tag == "" {
		return Expected{}, false
	}
	// The top Via as written: printable, with one branch (sipgo keeps the last of two,
	// a reader of the response may take either).
	if l := topVia(b); l == "" || strings.Count(l, "branch=") != 1 || strings.ContainsFunc(l, func(c rune) bool {
		return c < ' ' || c > '~'
	}) {
		return Expected{}, false
	}
	branch, _ := via.Params.Get("branch")
	if !strings.HasPrefix(branch, "z9hG4bK") || len(branch) < 10 || !strings.EqualFold(via.Transport, transport) ||
		via.SentBy() != local || len(req.GetHeaders("Via")) != 1 {
		return Expected{}, false
	}
	if mf := req.MaxForwards(); mf != nil && *mf == 0 {
		return Expected{}, false
	}
	// The message is its header section and a body of exactly its Content-Length: a
	// datagram parser ignores what follows or supplies a missing length, a stream would
	// take what follows for the next message. The SIP edge's scanner reads that (and a
	// message it refuses from outside the trust domain is not answered).
	var m edge.Message
	if edge.Scan(b, &m) != nil || m.ContentLength < 0 || m.HeaderEnd+m.ContentLength != len(b) {
		return Expected{}, false
	}
	return Expected{Branch: branch, Req: req}, true
}

// topVia returns the first Via header line of b as written ("" without one).
func topVia(b []byte) string {
	for _, l := range strings.Split(string(b), "\r\n")[1:] {
		if l == "" {
			return ""
		}
		name, _, _ := strings.Cut(l, ":")
		if n := strings.ToLower(strings.TrimSpace(name)); n == "via" || n == "v" {
			return l
		}
	}
	return ""
}
