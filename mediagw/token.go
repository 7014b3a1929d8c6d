package mediagw

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// tokenContext separates media tokens from every other use of the shared secret.
const tokenContext = "mgw-media/v1"

// maxTokenLen bounds what parseToken looks at; real tokens are about 55 bytes.
const maxTokenLen = 256

// newToken returns "<expiry unix>.<base64url HMAC-SHA256(secret, context|id|expiry)>":
// bound to one termination, unforgeable and not extendable without the secret.
func newToken(secret, id string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(tokenMAC(secret, id, exp))
}

func tokenMAC(secret, id, exp string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(tokenContext))
	m.Write([]byte{0})
	m.Write([]byte(id))
	m.Write([]byte{0})
	m.Write([]byte(exp))
	return m.Sum(nil)
}

// checkToken verifies token for termination id at time now. The signature is checked
// before the expiry so a forged token never learns whether its time was right. A token
// whose expiry lies further ahead than ttl (the gateway's TokenTTL) is refused too,
// although genuine: tokens stay short-lived even when one was minted under a longer
// lifetime (a configuration since shortened, a process that shared the secret).
func checkToken(secret, id, token string, now time.Time, ttl time.Duration) error {
	if token == "" || len(token) > maxTokenLen {
		return fmt.Errorf("%w: missing or too long", ErrBadToken)
	}
	exp, sig, ok := strings.Cut(token, ".")
	if !ok {
		return fmt.Errorf("%w: malformed", ErrBadToken)
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || sec <= 0 {
		return fmt.Errorf("%w: malformed expiry", ErrBadToken)
	}
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	// The decoder skips CR and LF and ignores the unused bits of the last character, so
	// several strings decode to one signature: only the canonical one is the token (a
	// token is one string, found by FuzzToken).
	if err != nil || base64.RawURLEncoding.EncodeToString(mac) != sig {
		return fmt.Errorf("%w: malformed signature", ErrBadToken)
	}
	if !hmac.Equal(mac, tokenMAC(secret, id, exp)) {
		return fmt.Errorf("%w: signature does not match this termination", ErrBadToken)
	}
	if now.Unix() >= sec {
		return fmt.Errorf("%w at %s", ErrTokenExpired, time.Unix(sec, 0).UTC().Format(time.RFC3339))
	}
	// One second of slack: mediaURL truncates the expiry to whole seconds.
	if sec > now.Add(ttl).Unix()+1 {
		return fmt.Errorf("%w: expires %s, beyond the token lifetime %s", ErrBadToken,
			time.Unix(sec, 0).UTC().Format(time.RFC3339), ttl)
	}
	return nil
}
