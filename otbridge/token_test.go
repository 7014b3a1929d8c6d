package otbridge

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func TestTokenRoundTrip(t *testing.T) {
	t.Parallel()
	k, err := NewClientKey()
	if err != nil {
		t.Fatal(err)
	}
	if !validClientKey(k) {
		t.Fatalf("key %q is not valid", k)
	}
	now := time.Unix(1_700_000_000, 0)
	tok := SignToken(testSecret, Claims{Client: k, User: "alice", Exp: now.Unix() + 60})
	c, err := ParseToken(testSecret, tok, now)
	if err != nil || c.Client != k || c.User != "alice" {
		t.Fatalf("parse: %+v %v", c, err)
	}
	cases := map[string]struct {
		tok  string
		want error
	}{
		"expired":    {tok, ErrExpired},
		"other key":  {SignToken([]byte("another secret of 32 bytes......"), c), ErrForgedToken},
		"no dot":     {"abc", ErrBadToken},
		"bad base64": {"a*b.c", ErrBadToken},
		"tampered":   {"eyJrIjoiYWJjIn0" + tok[strings.IndexByte(tok, '.'):], ErrForgedToken},
		"bad claims": {SignToken(testSecret, Claims{Client: "short", Exp: now.Unix() + 60}), ErrBadToken},
		"bad user":   {SignToken(testSecret, Claims{Client: k, User: "a/b", Exp: now.Unix() + 60}), ErrBadToken},
		"too long":   {strings.Repeat("a", 2000), ErrBadToken},
		"empty":      {"", ErrBadToken},
		"only dot":   {".", ErrForgedToken},
	}
	for name, tc := range cases {
		at := now
		if name == "expired" {
			at = now.Add(time.Minute)
		}
		if _, err := ParseToken(testSecret, tc.tok, at); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

// FuzzParseToken checks that the parser never panics and that anything it accepts is a
// token that signs back to itself with valid claims.
func FuzzParseToken(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	f.Add(SignToken(testSecret, Claims{Client: "abcdefghijklmnopqrstuvwxyz", User: "bob", Exp: now.Unix() + 10}))
	f.Add(SignToken(testSecret, Claims{Client: "abcdefghijklmnopqrstuvwxyz", Exp: now.Unix() - 10}))
	f.Add("e30.AAAA")
	f.Add("..")
	f.Add("eyJrIjoxfQ.")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ParseToken(testSecret, tok, now)
		if err != nil {
			return
		}
		if !validClientKey(c.Client) || c.Exp <= now.Unix() {
			t.Fatalf("accepted bad claims %+v", c)
		}
		if _, err := ParseToken(testSecret, SignToken(testSecret, c), now); err != nil {
			t.Fatalf("re-signed claims refused: %v", err)
		}
	})
}
