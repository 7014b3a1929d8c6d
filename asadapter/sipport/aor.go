package sipport

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// maxAORQuote bounds how much of a refused URI an error quotes (the input may come from a
// browser and end up in a DSM field).
const maxAORQuote = 64

// ParseAOR parses a user's SIP URI as an address of record: sip: or sips: with a host, and
// nothing of a contact (URI parameters, headers, password) kept. Both sides use it: the
// users side for what the web server posts, call control for the From of a call placed by
// a registered user. Errors wrap ErrBadAOR.
func ParseAOR(s string) (sip.Uri, error) {
	// sipgo's parser takes a host of "\n" or " x": a URI with white space, a control
	// character or a bracket would break the header it is written into.
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`<>"`, r) }) {
		return sip.Uri{}, fmt.Errorf("%w %.*q: white space, control character or bracket", ErrBadAOR, maxAORQuote, s)
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return u, fmt.Errorf("%w %.*q: %v", ErrBadAOR, maxAORQuote, s, err)
	}
	if (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
		return u, fmt.Errorf("%w %.*q: want sip: or sips: with a host", ErrBadAOR, maxAORQuote, s)
	}
	return sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}, nil
}

// NameAddr renders a name-addr without tag, for From, To and P-Preferred-Identity. The
// display name becomes a SIP quoted-string (RFC 3261 section 25.1: backslash and double
// quote escaped); control characters are dropped, since a CR or LF would end the header.
func NameAddr(display string, u sip.Uri) string {
	display = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, display)
	if display != "" {
		return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(display) + `" <` + u.String() + ">"
	}
	return "<" + u.String() + ">"
}
