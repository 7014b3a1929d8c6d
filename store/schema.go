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
			Client   string `json:"client"`
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

// IsIndex reports whether addr is one of the index objects, which are exempt from the
// per-object field limit (they hold one field per player or user).
func (s *Schema) IsIndex(addr string) bool {
	return addr == s.Players.Index || addr == s.Users.Index
}
