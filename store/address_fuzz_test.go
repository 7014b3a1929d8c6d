package store

import (
	"errors"
	"strings"
	"testing"
)

// FuzzAddress: whatever ValidAddress accepts has 1 to 8 segments of 1 to 128 allowed bytes,
// none of them "." or ".."; an accepted address under the players prefix that the schema
// accepts too has an owner, its first segment; and ParsePlayerAddress, where it answers,
// gives back the address it was given.
func FuzzAddress(f *testing.F) {
	for _, a := range []string{"players/k/audio", "players/k/x/y/z", "players/k/x1", "players/k",
		"players//audio", "players/A/../B/audio", "users/a/conf/c1", "a/./b", "a//b", "é/x", "players/k/audio/"} {
		f.Add(a)
	}
	s, err := LoadSchema()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if client, media, ok := s.ParsePlayerAddress(addr); ok && s.PlayerAddress(client, media) != addr {
			t.Fatalf("%q parsed as %q %q", addr, client, media)
		}
		if err := ValidAddress(addr); err != nil {
			if !errors.Is(err, ErrBadAddress) {
				t.Fatalf("%q: unclassified error %v", addr, err)
			}
			return
		}
		segs := strings.Split(addr, "/")
		if len(segs) < 1 || len(segs) > MaxAddressSegments {
			t.Fatalf("%q accepted with %d segments", addr, len(segs))
		}
		for _, g := range segs {
			if g == "" || g == "." || g == ".." || len(g) > maxSegmentBytes || strings.IndexFunc(g, func(r rune) bool {
				return r > 0x7f || !addrByte(byte(r))
			}) >= 0 {
				t.Fatalf("%q accepted with segment %q", addr, g)
			}
		}
		if sh := shardOf(addr, 16); sh < 0 || sh >= 16 {
			t.Fatalf("%q: shard %d", addr, sh)
		}
		if err := s.ValidatePlayerAddress(addr); err != nil {
			if !errors.Is(err, ErrBadOp) {
				t.Fatalf("%q: unclassified error %v", addr, err)
			}
			return
		}
		key, owned := s.Owner(addr)
		under := strings.HasPrefix(addr, s.Players.Prefix)
		if owned != under || (owned && key != segs[1]) {
			t.Fatalf("%q: owner %q %v", addr, key, owned)
		}
	})
}

// FuzzValidEpoch: an accepted epoch is at most 32 bytes of [A-Za-z0-9_-].
func FuzzValidEpoch(f *testing.F) {
	for _, e := range []string{"", "AbC_-9", "a b", strings.Repeat("e", 33), "é"} {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, e string) {
		if !ValidEpoch(e) {
			return
		}
		if len(e) > maxEpochBytes || strings.Trim(e, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "" {
			t.Fatalf("accepted %q", e)
		}
	})
}
