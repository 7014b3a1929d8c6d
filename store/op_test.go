package store

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeOps checks that any input either decodes to ops that pass Validate and survive
// a round trip unchanged, or is refused with ErrBadOp / a validation error; never a panic.
func FuzzDecodeOps(f *testing.F) {
	f.Add([]byte(`[{"o":"set","f":"a","v":"b"},{"o":"del","f":"c"},{"o":"expect","f":"d"}]`))
	f.Add([]byte(`[{"o":"set","f":"a"}]`))
	f.Add([]byte(`[{"o":"incr","f":"a","v":"1"}]`))
	f.Add([]byte(`{"o":"set"}`))
	f.Add([]byte(`[{"o":"expect","f":"x","v":null}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ops []Op
		if err := json.Unmarshal(b, &ops); err != nil {
			return
		}
		if err := Validate(ops, DefaultLimits()); err != nil {
			if !errors.Is(err, ErrBadOp) && !errors.Is(err, ErrTooManyOps) && !errors.Is(err, ErrValueTooLong) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		out, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		var again []Op
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("round trip of %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if string(out) != string(out2) {
			t.Fatalf("round trip changed %s to %s", out, out2)
		}
	})
}

func TestValidAddress(t *testing.T) {
	good := []string{"players", "players/AB12/audio", "users/alice@example.com", "users/a/conf/c-1.x_y:z+w"}
	bad := []string{"", "/", "a//b", "a/", "a b", "a/\x00", ".", "..", "a/./b", "players/k/../j/audio", "a/b/c/d/e/f/g/h/i", string(make([]byte, 129))}
	for _, a := range good {
		if err := ValidAddress(a); err != nil {
			t.Errorf("%q: %v", a, err)
		}
	}
	for _, a := range bad {
		if err := ValidAddress(a); !errors.Is(err, ErrBadAddress) {
			t.Errorf("%q accepted", a)
		}
	}
}

func TestSchemaNames(t *testing.T) {
	s, err := LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	if s.Players.Fields.MgwURL != "mgw_url" || s.PlayerAddress("k", "audio") != "players/k/audio" {
		t.Fatalf("schema: %+v", s.Players)
	}
	c, m, ok := s.ParsePlayerAddress("players/k/video")
	if !ok || c != "k" || m != "video" {
		t.Fatal("ParsePlayerAddress")
	}
	if _, _, ok := s.ParsePlayerAddress("players/k/video/x"); ok {
		t.Fatal("ParsePlayerAddress accepted a deeper address")
	}
}

// FuzzValidateIndexOp checks that whatever the players index accepts is a player address
// of a known media kind whose value is that kind.
func FuzzValidateIndexOp(f *testing.F) {
	f.Add("players/k/audio", "audio")
	f.Add("players/A/../B/audio", "audio")
	f.Add("players/k/video", "audio")
	f.Add("players//audio", "audio")
	s, err := LoadSchema()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, field, value string) {
		if err := s.ValidateIndexOp(s.Players.Index, []Op{Set(field, value)}); err != nil {
			if !errors.Is(err, ErrBadOp) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		_, media, ok := s.ParsePlayerAddress(field)
		if !ok || ValidAddress(field) != nil || !s.IsMedia(media) || value != media {
			t.Fatalf("accepted %q = %q", field, value)
		}
	})
}
