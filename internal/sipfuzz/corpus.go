// Package sipfuzz sends mutated SIP messages to a live gateway over UDP and TCP and checks
// that it survives them: every well-formed request is answered, and nothing of the run is
// left behind in the gateway (its goroutines and memory, read from its /metrics). The
// seeds are the project's own: the SIP messages of the fuzz targets' testdata, the
// messages of the sipp scenarios under testdata, made concrete, and the edge's sample
// messages. cmd/sipfuzz runs it at length; a short run is part of the tests.
package sipfuzz

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Seed is one message of the corpus, with the sipp keywords still in it ([call_id] ...):
// Target fills them in for each message sent.
type Seed struct {
	Name string // where it came from
	Text string
}

// LoadCorpus reads the seeds under the module root: *.sip files and the <send> messages
// of sipp scenarios (*.xml) in testdata folders, and the fuzz corpus entries
// (testdata/fuzz/...) that hold a SIP message.
func LoadCorpus(root string) ([]Seed, error) {
	var out []Seed
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == ".git" || n == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.Contains(path, string(filepath.Separator)+"testdata"+string(filepath.Separator)) {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(path, ".sip"):
			out = append(out, Seed{Name: rel, Text: templated(string(b))})
		case strings.HasSuffix(path, ".xml"):
			for i, m := range scenarioMessages(b) {
				out = append(out, Seed{Name: fmt.Sprintf("%s#%d", rel, i), Text: m})
			}
		case strings.Contains(path, string(filepath.Separator)+"fuzz"+string(filepath.Separator)):
			if m, ok := corpusEntry(b); ok {
				out = append(out, Seed{Name: rel, Text: templated(m)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sipfuzz: corpus: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("sipfuzz: no seed under %s", root)
	}
	return out, nil
}

// templated turns a captured message into a seed: its top Via names the fuzzer (over
// the run's transport, with a branch of its own) and its Call-ID is the message's, as in
// the sipp scenarios, so that its answer comes back to the fuzzer and is told apart.
func templated(msg string) string {
	lines := strings.Split(msg, "\n")
	via, cid := false, false
	for i, l := range lines {
		name, _, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch n := strings.ToLower(strings.TrimSpace(name)); {
		case !via && (n == "via" || n == "v"):
			lines[i], via = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport", true
		case !cid && (n == "call-id" || n == "i"):
			lines[i], cid = "Call-ID: [call_id]", true
		}
	}
	return strings.Join(lines, "\n")
}

// scenarioMessages returns the messages a sipp scenario sends, as written (keywords in),
// with CRLF line ends and the scenario's indentation removed.
func scenarioMessages(b []byte) []string {
	var out []string
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = false
	// The scenarios declare ISO-8859-1 and are ASCII.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	inSend := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return out
		}
		switch t := tok.(type) {
		case xml.StartElement:
			inSend = t.Name.Local == "send"
		case xml.EndElement:
			inSend = false
		case xml.CharData:
			if !inSend || !bytes.Contains(t, []byte("SIP/2.0")) {
				continue
			}
			var lines []string
			for _, l := range strings.Split(strings.TrimSpace(string(t)), "\n") {
				lines = append(lines, strings.TrimSpace(l))
			}
			out = append(out, strings.Join(lines, "\r\n"))
		}
	}
}

// corpusEntry returns the value of a Go fuzz corpus file ("go test fuzz v1" and one
// string(...) or []byte(...) line) when it holds a SIP message.
func corpusEntry(b []byte) (string, bool) {
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		return "", false
	}
	v := strings.TrimSpace(lines[1])
	for _, p := range []string{"[]byte(", "string("} {
		if s, ok := strings.CutPrefix(v, p); ok {
			u, err := strconv.Unquote(strings.TrimSuffix(s, ")"))
			if err == nil && strings.Contains(u, "SIP/2.0") {
				return u, true
			}
		}
	}
	return "", false
}

// Target is what a seed's keywords become for one message.
type Target struct {
	Local, Remote string // host:port of the fuzzer and of the gateway
	Transport     string // "UDP" or "TCP"
	User          string // [service]
	ID            string // unique per message: Call-ID, branch and tags are made of it
}

// Fill replaces the sipp keywords of text with target's values, makes line ends CRLF
// and sets Content-Length to the body's length (when the message has a header section).
func Fill(text string, t Target) string {
	lh, lp := splitHostPort(t.Local)
	rh, rp := splitHostPort(t.Remote)
	value := func(name string) string {
		switch name {
		case "service":
			return t.User
		case "remote_ip":
			return rh
		case "remote_port":
			return rp
		case "local_ip", "media_ip":
			return lh
		case "local_port":
			return lp
		case "media_port", "auto_media_port":
			return "40000"
		case "local_ip_type", "media_ip_type":
			return "4"
		case "transport":
			return t.Transport
		case "branch":
			return "z9hG4bK-" + t.ID
		case "call_id":
			return t.ID + "@fuzz"
		case "pid", "call_number":
			return t.ID
		case "cseq":
			return "1"
		case "next_url":
			return "sip:" + t.User + "@" + t.Remote
		}
		return "" // [len] is set below; [routes], [peer_tag_param], [last_*] ... are empty
	}
	// Line by line: a line that held only a keyword which is empty here ([routes]) goes.
	var filled []string
	for _, l := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		f := replaceKeywords(l, value)
		if strings.TrimSpace(f) == "" && strings.TrimSpace(l) != "" {
			continue
		}
		filled = append(filled, f)
	}
	s := strings.Join(filled, "\n")
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
	head, body, ok := strings.Cut(s, "\r\n\r\n")
	if !ok {
		return s
	}
	var lines []string
	for _, l := range strings.Split(head, "\r\n") {
		if n, _, ok := strings.Cut(l, ":"); ok && (strings.EqualFold(strings.TrimSpace(n), "content-length") ||
			strings.EqualFold(strings.TrimSpace(n), "l")) {
			l = "Content-Length: " + strconv.Itoa(len(body))
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\r\n") + "\r\n\r\n" + body
}

func splitHostPort(a string) (string, string) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 {
		return a, "5060"
	}
	return a[:i], a[i+1:]
}

// replaceKeywords replaces every sipp keyword of s ("[name]" or "[name param ...]", name
// of lower-case letters and underscores) with value(name); other brackets stay.
func replaceKeywords(s string, value func(name string) string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '[')
		if i < 0 {
			return b.String() + s
		}
		j := strings.IndexByte(s[i:], ']')
		if j < 0 {
			return b.String() + s
		}
		inner := s[i+1 : i+j]
		name, _, _ := strings.Cut(inner, " ")
		if name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz_") != "" || strings.ContainsRune(inner, '[') {
			b.WriteString(s[:i+1])
			s = s[i+1:]
			continue
		}
		b.WriteString(s[:i])
		b.WriteString(value(name))
		s = s[i+j+1:]
	}
}
