package users

import (
	"errors"
	"strings"
	"testing"
)

func TestSealedPasswords(t *testing.T) {
	t.Parallel()
	s, err := newSealer("users-secret-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newSealer("another-secret-0123456789abcdef")
	for _, pw := range []string{"secret", "pässwörd with spaces", strings.Repeat("x", 256)} {
		sealed := s.seal("alice", pw)
		if strings.Contains(sealed, pw) || sealed == s.seal("alice", pw) {
			t.Fatalf("%q sealed as %q (in clear, or without a fresh nonce)", pw, sealed)
		}
		if got, err := s.open("alice", sealed); err != nil || got != pw {
			t.Fatalf("open: %q %v", got, err)
		}
		if _, err := s.open("bob", sealed); !errors.Is(err, ErrSealed) {
			t.Fatalf("opened as another user: %v", err)
		}
		if _, err := other.open("alice", sealed); !errors.Is(err, ErrSealed) {
			t.Fatalf("opened with another secret: %v", err)
		}
	}
	if s.seal("alice", "") != "" {
		t.Fatal("no password sealed as something")
	}
}

// FuzzOpenSealed: whatever a record holds, open returns a password it sealed or ErrSealed,
// and never panics.
func FuzzOpenSealed(f *testing.F) {
	s, err := newSealer("users-secret-0123456789abcdef")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(s.seal("alice", "secret"))
	f.Add("")
	f.Add("AAAA")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, v string) {
		if _, err := s.open("alice", v); err != nil && !errors.Is(err, ErrSealed) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
