package otbridge

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"dsmgw/store"
)

// Claims are what a token asserts: the client key it is bound to, an optional user, and
// its expiry (unix seconds).
type Claims struct {
	Client string `json:"k"`
	User   string `json:"u,omitempty"`
	Exp    int64  `json:"exp"`
}

// clientKeyLen is the length of a client key: 128 bits in base32 without padding.
const clientKeyLen = 26

// maxTokenBytes bounds a token before any decoding (claims are well under 300 bytes).
const maxTokenBytes = 1024

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewClientKey returns a fresh client key: 128 random bits in lower-case base32, which is
// also a valid address segment.
func NewClientKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("otbridge: client key: %w", err)
	}
	return keyEncoding.EncodeToString(b[:]), nil
}

func validClientKey(k string) bool {
	if len(k) != clientKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// validUser reports whether u can be a user name: one address segment (it becomes part of
// users/<u>).
func validUser(u string) bool {
	return u != "" && !strings.Contains(u, "/") && store.ValidAddress(u) == nil
}

// SignToken returns base64url(JSON claims) "." base64url(HMAC-SHA256(secret, JSON claims)).
func SignToken(secret []byte, c Claims) string {
	payload, _ := json.Marshal(c) // a struct of strings and an int cannot fail
	mac := hmac.New(sha256.New, secret)
	mac.Write(payload)
	return base64.RawURLEncoding.EncodeToString(payload) + "." +
		base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// ParseToken checks a token's signature, claims and expiry at now. It returns ErrBadToken,
// ErrForgedToken or ErrExpired (wrapped with detail).
func ParseToken(secret []byte, tok string, now time.Time) (Claims, error) {
	if len(tok) > maxTokenBytes {
		return Claims{}, fmt.Errorf("%w: %d bytes", ErrBadToken, len(tok))
	}
	p64, s64, ok := strings.Cut(tok, ".")
	if !ok {
		return Claims{}, fmt.Errorf("%w: no signature", ErrBadToken)
	}
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrBadToken, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature: %v", ErrBadToken, err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(payload)
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return Claims{}, ErrForgedToken
	}
	var c Claims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Claims{}, fmt.Errorf("%w: claims: %v", ErrBadToken, err)
	}
	if !validClientKey(c.Client) {
		return Claims{}, fmt.Errorf("%w: client key %.40q", ErrBadToken, c.Client)
	}
	if c.User != "" && !validUser(c.User) {
		return Claims{}, fmt.Errorf("%w: user %.40q", ErrBadToken, c.User)
	}
	if now.Unix() >= c.Exp {
		return Claims{}, fmt.Errorf("%w at %s", ErrExpired, time.Unix(c.Exp, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}
