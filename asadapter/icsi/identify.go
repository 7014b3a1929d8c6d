package icsi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// maxValue bounds the header text looked at: real values are a few dozen bytes, the
// bound keeps a hostile one from costing time.
const maxValue = 4096

// Identify returns the service an incoming initial request asks for, looking where the
// network's word weighs most first:
//
//  1. P-Asserted-Service, asserted by the S-CSCF (RFC 6050, TS 24.229 section 5.4.3.2);
//  2. P-Preferred-Service, from a peer that reaches us without a CSCF;
//  3. the feature tags of Accept-Contact (what the caller asks for, RFC 3841);
//  4. the feature tags of Contact (what the caller's UE is, RFC 3840).
//
// The first of them that names any service decides: MMTel or MCPTT (push-to-talk), or,
// when it names only services the gateway does not offer, ErrUnsupportedService with
// what it named. A request with no identification at all is a plain voice call: MMTel.
func Identify(req *sip.Request) (Service, error) {
	for _, name := range []string{"P-Asserted-Service", "P-Preferred-Service"} {
		var urns []string
		for _, h := range req.GetHeaders(name) {
			urns = append(urns, ServiceURNs(h.Value())...)
		}
		if s, ok, err := decide(name, urns, false); ok {
			return s, err
		}
	}
	for _, h := range req.GetHeaders("Accept-Contact") {
		for _, ac := range splitOutside(limit(h.Value()), ',') {
			mcptt, urns := FeatureTags(afterAddress(ac))
			if s, ok, err := decide("Accept-Contact", urns, mcptt); ok {
				return s, err
			}
		}
	}
	if c := req.GetHeader("Contact"); c != nil {
		mcptt, urns := FeatureTags(afterAddress(c.Value()))
		if s, ok, err := decide("Contact", urns, mcptt); ok {
			return s, err
		}
	}
	return MMTel, nil
}

// decide maps what one place names to a service: ok is false when it names nothing.
func decide(where string, urns []string, mcptt bool) (Service, bool, error) {
	if mcptt {
		return PoC, true, nil
	}
	if len(urns) == 0 {
		return "", false, nil
	}
	for _, u := range urns {
		if s, ok := serviceOfURN(u); ok {
			return s, true, nil
		}
	}
	return "", true, fmt.Errorf("%w: %s names %.120s", ErrUnsupportedService, where, strings.Join(urns, ","))
}

// serviceOfURN maps an ICSI to a service: the MMTel or MCPTT ICSI, or a sub-service of
// one (TS 24.229 lets an ICSI be refined with further dot-separated labels).
func serviceOfURN(u string) (Service, bool) {
	for _, s := range []Service{MMTel, PoC} {
		base := s.URN()
		if len(u) >= len(base) && strings.EqualFold(u[:len(base)], base) && (len(u) == len(base) || u[len(base)] == '.') {
			return s, true
		}
	}
	return "", false
}

// ServiceURNs reads the service identifiers of a P-Asserted-Service or
// P-Preferred-Service value (RFC 6050: "urn:urn-7:" URNs separated by commas); anything
// else in the list is skipped.
func ServiceURNs(v string) []string {
	var out []string
	for _, part := range strings.Split(limit(v), ",") {
		u := strings.TrimSpace(part)
		if len(u) > len("urn:urn-7:") && strings.EqualFold(u[:len("urn:urn-7:")], "urn:urn-7:") {
			out = append(out, u)
		}
	}
	return out
}

// FeatureTags reads the feature tag parameters of one Contact or Accept-Contact value
// (the ";"-separated parameters after its address or "*"): whether +g.3gpp.mcptt is
// there, and the ICSIs of +g.3gpp.icsi-ref (a quoted, comma-separated list of
// percent-encoded URNs, RFC 3840 section 9).
func FeatureTags(params string) (mcptt bool, urns []string) {
	for _, p := range splitOutside(limit(params), ';') {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		name = strings.TrimSpace(name)
		switch {
		case strings.EqualFold(name, TagMCPTT):
			mcptt = true
		case strings.EqualFold(name, TagICSI):
			value = strings.Trim(strings.TrimSpace(value), `"`)
			for _, u := range strings.Split(value, ",") {
				u = strings.TrimSpace(u)
				if d, err := url.PathUnescape(u); err == nil {
					u = d
				}
				if u != "" {
					urns = append(urns, u)
				}
			}
		}
	}
	return mcptt, urns
}

// afterAddress returns the parameters of a Contact or Accept-Contact value: what follows
// a "<...>" address, else what follows the first ";" (a bare URI, or "*").
func afterAddress(v string) string {
	v = limit(v)
	if i := strings.IndexByte(v, '>'); i >= 0 && strings.IndexByte(v, '<') < i {
		return v[i+1:]
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[i:]
	}
	return ""
}

// splitOutside splits s at sep outside double quotes (a quoted feature tag value holds
// commas and semicolons of its own).
func splitOutside(s string, sep byte) []string {
	var (
		out   []string
		start int
		quote bool
	)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quote = !quote
		case '\\':
			if quote {
				i++ // a quoted-pair
			}
		case sep:
			if !quote {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[min(start, len(s)):])
}

func limit(s string) string {
	if len(s) > maxValue {
		return s[:maxValue]
	}
	return s
}
