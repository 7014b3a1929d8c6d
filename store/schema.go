package store

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed schema.json
var schemaJSON []byte

// SchemaJSON returns the schema file as served to browsers at /dsm/schema.json.
func SchemaJSON() []byte { return append([]byte(nil), schemaJSON...) }

// Schema holds the field names of the well-known structures (players and users), read from
// schema.json, the single source shared with the browser client.
type Schema struct {
	Players struct {
		Index  string   `json:"index"`
		Prefix string   `json:"prefix"`
		Media  []string `json:"media"`
		Fields struct {
			Service     string `json:"service"`
			Remote      string `json:"remote"`
			Conference  string `json:"conference"`
			Encoding    string `json:"encoding"`
			PlayerState string `json:"playerState"`
			MgwState    string `json:"mgwState"`
			MgwURL      string `json:"mgwURL"`
			Progress    string `json:"progress"`
			SipStatus   string `json:"sipStatus"`
			SipReason   string `json:"sipReason"`
			Caller      string `json:"caller"`
			CallID      string `json:"callID"`
			DTMF        string `json:"dtmf"`
			Hold        string `json:"hold"`
			// HoldIntent is written by the page ("hold" to hold the call, absent to
			// resume); the gateway re-INVITEs and shows the result in Hold ("local").
			HoldIntent string `json:"holdIntent"`
			// MediaQuality is written by the adapter every few seconds of a connected
			// call: the media gateway's counters of the call's termination as compact
			// JSON (asadapter's MediaQuality).
			MediaQuality string `json:"mediaQuality"`
			// Push-to-talk (docs/push-to-talk.md): the page writes Floor (a
			// FloorIntents value, consumed by the gateway); the gateway writes the others.
			Floor         string `json:"floor"`
			FloorState    string `json:"floorState"`
			FloorTalker   string `json:"floorTalker"`
			FloorReason   string `json:"floorReason"`
			FloorPosition string `json:"floorPosition"`
			FloorDuration string `json:"floorDuration"`
			// ClaimGen is the generation of the gateway instance's claim on the call
			// (asadapter/records.go): every commit the owner makes about the call
			// expects it, so a commit of an owner that lost the call is refused.
			ClaimGen string `json:"claimGen"`
		} `json:"fields"`
		Services     []string `json:"services"`
		FloorIntents []string `json:"floorIntents"`
		FloorStates  []string `json:"floorStates"`
		States       []string `json:"states"`
		PlayerStates []string `json:"playerStates"`
		Encodings    []string `json:"encodings"`
	} `json:"players"`
	Users struct {
		Index       string `json:"index"`
		Prefix      string `json:"prefix"`
		ConfSegment string `json:"confSegment"`
		Fields      struct {
			Name              string `json:"name"`
			SipURI            string `json:"sipURI"`
			Registration      string `json:"registration"`
			RegistrationError string `json:"registrationError"`
			Conferences       string `json:"conferences"`
			// Services lists the IMS services the user's page offers ("mmtel poc"):
			// the REGISTER's Contact carries their feature tags (asadapter/icsi).
			Services string `json:"services"`
			// SignIn is written by the user's own page in demo mode (the time, every
			// minute or so; deleted at sign-out): the users side then registers the
			// user itself, as the registration API would (asadapter/users, demo.go).
			SignIn string `json:"signIn"`
		} `json:"fields"`
		RegistrationStates []string `json:"registrationStates"`
		ParticipantFields  struct {
			Display string `json:"display"`
			Status  string `json:"status"`
		} `json:"participantFields"`
	} `json:"users"`
}

// LoadSchema parses the embedded schema.
func LoadSchema() (*Schema, error) {
	var s Schema
	if err := json.Unmarshal(schemaJSON, &s); err != nil {
		return nil, fmt.Errorf("store: schema.json: %w", err)
	}
	return &s, nil
}

// PlayerAddress returns the address of a client's player object for a media kind.
func (s *Schema) PlayerAddress(client, media string) string {
	return s.Players.Prefix + client + "/" + media
}

// ParsePlayerAddress splits "players/<client>/<media>".
func (s *Schema) ParsePlayerAddress(addr string) (client, media string, ok bool) {
	rest, found := strings.CutPrefix(addr, s.Players.Prefix)
	if !found {
		return "", "", false
	}
	client, media, ok = strings.Cut(rest, "/")
	if !ok || client == "" || media == "" || strings.Contains(media, "/") {
		return "", "", false
	}
	return client, media, true
}

// UserAddress returns "users/<user>".
func (s *Schema) UserAddress(user string) string { return s.Users.Prefix + user }

// ConferenceAddress returns "users/<user>/conf/<id>", the live participant list of one
// conference as seen by one user.
func (s *Schema) ConferenceAddress(user, conf string) string {
	return s.Users.Prefix + user + "/" + s.Users.ConfSegment + "/" + conf
}

// IsMedia reports whether m is one of the schema's media kinds.
func (s *Schema) IsMedia(m string) bool {
	for _, x := range s.Players.Media {
		if x == m {
			return true
		}
	}
	return false
}

// ValidatePlayerAddress checks an object under the players prefix: players/<key>/<media>
// with media one of the schema's kinds is a player (what the AS adapter acts on);
// players/<key>/<name>/... with more segments is a private object of that key (load tests
// keep theirs there), which the adapter leaves alone. Nothing else exists under the prefix.
// Other addresses pass.
func (s *Schema) ValidatePlayerAddress(obj string) error {
	rest, ok := strings.CutPrefix(obj, s.Players.Prefix)
	if !ok {
		return nil
	}
	key, sub, _ := strings.Cut(rest, "/")
	switch {
	case key == "" || sub == "":
		return fmt.Errorf("%w: %.80q is not %s<key>/<media>", ErrBadOp, obj, s.Players.Prefix)
	case !strings.Contains(sub, "/") && !s.IsMedia(sub):
		return fmt.Errorf("%w: %.80q: a player's media is one of %v", ErrBadOp, obj, s.Players.Media)
	}
	return nil
}

// Owner returns the client key owning obj: the <key> of players/<key>/..., which goes when
// that key is gone for good (see Janitor). ok is false for objects nobody owns.
func (s *Schema) Owner(obj string) (key string, ok bool) {
	rest, found := strings.CutPrefix(obj, s.Players.Prefix)
	if !found {
		return "", false
	}
	key, sub, found := strings.Cut(rest, "/")
	return key, found && key != "" && sub != ""
}

// ValidateIndexOp checks an op on the players index against the schema: every field it
// touches is a player address players/<key>/<media> (a valid address, media one of the
// schema's kinds) and every value it sets or expects is that media kind. Other objects
// pass. The index is what the AS adapter walks to find players: a field that is not a
// player address would make it act on an object nobody owns.
func (s *Schema) ValidateIndexOp(obj string, ops []Op) error {
	if obj != s.Players.Index {
		return nil
	}
	for i, o := range ops {
		if err := ValidAddress(o.Field); err != nil {
			return fmt.Errorf("%w: element %d: index field: %v", ErrBadOp, i, err)
		}
		_, media, ok := s.ParsePlayerAddress(o.Field)
		if !ok || !s.IsMedia(media) {
			return fmt.Errorf("%w: element %d: index field %.80q is not %s<key>/<media>", ErrBadOp, i, o.Field, s.Players.Prefix)
		}
		if o.Value != nil && *o.Value != media {
			return fmt.Errorf("%w: element %d: index value %.40q of %s must be %q", ErrBadOp, i, *o.Value, o.Field, media)
		}
	}
	return nil
}

// IsIndex reports whether addr is one of the index objects, which are exempt from the
// per-object field limit (they hold one field per player or user).
func (s *Schema) IsIndex(addr string) bool {
	return addr == s.Players.Index || addr == s.Users.Index
}
