package webclient

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/store"

	"github.com/zaf/g711"
)

// agreementScript runs in node: it reads vectors on stdin and prints, for each, the JS
// transform and the JS schema helpers' answers.
const agreementScript = `
import { transformServer, transformClient } from './transform.js';
import { Schema } from './schema.js';
import { readFileSync } from 'node:fs';
const v = JSON.parse(readFileSync(0, 'utf8'));
const schema = new Schema(v.schema);
const out = {
  transforms: v.cases.map((c) => ({ server: transformServer(c.s, ...c.pending), client: transformClient(c.c, c.s) })),
  addresses: v.addresses.map((a) => ({
    player: schema.playerAddress(a.client, a.media),
    parsed: schema.parsePlayerAddress(a.parse),
    user: schema.userAddress(a.user),
    conf: schema.conferenceAddress(a.user, a.conf),
    index: schema.isIndex(a.parse),
  })),
  fields: { players: schema.P, users: schema.U, participants: schema.C },
};
process.stdout.write(JSON.stringify(out));
`

type agreementCase struct {
	S       []store.Op   `json:"s"`
	C       []store.Op   `json:"c"`
	Pending [][]store.Op `json:"pending"`
}

type addrCase struct {
	Client, Media, Parse, User, Conf string
}

func (a addrCase) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{"client": a.Client, "media": a.Media, "parse": a.Parse, "user": a.User, "conf": a.Conf})
}

func randomOps(r *rand.Rand, n int) []store.Op {
	ops := make([]store.Op, 0, n)
	for range n {
		f := string(rune('a' + r.IntN(5)))
		v := string(rune('0' + r.IntN(3)))
		switch r.IntN(4) {
		case 0, 1:
			ops = append(ops, store.Set(f, v))
		case 2:
			ops = append(ops, store.Del(f))
		default:
			if r.IntN(2) == 0 {
				ops = append(ops, store.Expect(f, v))
			} else {
				ops = append(ops, store.ExpectAbsent(f))
			}
		}
	}
	return ops
}

func canon(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var ops []store.Op
	if err := json.Unmarshal(raw, &ops); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	b, _ := json.Marshal(ops)
	return string(b)
}

// TestTransformAndSchemaAgreeWithGo runs the same random vectors through
// store.TransformServer/TransformClient and through transform.js in node, and the same
// addresses through store.Schema and schema.js: Go and JS must agree on every one. The
// JS schema reads the bytes the handler serves, so this is also the check that the field
// names agree.
func TestTransformAndSchemaAgreeWithGo(t *testing.T) {
	t.Parallel()
	node := testpeer.Need(t, "node")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	cases := make([]agreementCase, 2000)
	for i := range cases {
		c := agreementCase{S: randomOps(r, 1+r.IntN(6)), C: randomOps(r, 1+r.IntN(4))}
		for range r.IntN(4) {
			c.Pending = append(c.Pending, randomOps(r, 1+r.IntN(4)))
		}
		if c.Pending == nil {
			c.Pending = [][]store.Op{}
		}
		cases[i] = c
	}
	addrs := []addrCase{
		{"K7QXZ", "audio", "players/K7QXZ/audio", "alice", "conf-1"},
		{"a.b-c", "video", "players", "bob@example.com", "x:y"},
		{"x", "audio", "players/x", "u", "c"},
		{"x", "audio", "players/x/audio/extra", "u", "c"},
		{"x", "audio", "users", "u", "c"},
		{"x", "audio", "players//audio", "u", "c"},
	}
	h := newHandler(t, Config{})
	res := get(t, h, "GET", SchemaPath, nil)
	var schemaJSON json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&schemaJSON); err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]any{"cases": cases, "addresses": addrs, "schema": schemaJSON})

	cmd := exec.Command(node, "--input-type=module", "-e", agreementScript)
	cmd.Dir, _ = filepath.Abs(".")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var js struct {
		Transforms []struct {
			Server json.RawMessage `json:"server"`
			Client json.RawMessage `json:"client"`
		} `json:"transforms"`
		Addresses []struct {
			Player string `json:"player"`
			Parsed *struct {
				Client string `json:"client"`
				Media  string `json:"media"`
			} `json:"parsed"`
			User  string `json:"user"`
			Conf  string `json:"conf"`
			Index bool   `json:"index"`
		} `json:"addresses"`
		Fields struct {
			Players      map[string]string `json:"players"`
			Users        map[string]string `json:"users"`
			Participants map[string]string `json:"participants"`
		} `json:"fields"`
	}
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatalf("node output: %v", err)
	}
	if len(js.Transforms) != len(cases) {
		t.Fatalf("node answered %d cases of %d", len(js.Transforms), len(cases))
	}
	for i, c := range cases {
		goS, _ := json.Marshal(store.TransformServer(c.S, c.Pending...))
		if got := canon(t, js.Transforms[i].Server); got != string(goS) {
			cj, _ := json.Marshal(c)
			t.Fatalf("case %d (seed %d) TransformServer: go %s, js %s for %s", i, seed, goS, got, cj)
		}
		goC, _ := json.Marshal(store.TransformClient(c.C, c.S))
		if got := canon(t, js.Transforms[i].Client); got != string(goC) {
			t.Fatalf("case %d TransformClient: go %s, js %s", i, goC, got)
		}
	}

	sc, err := store.LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range addrs {
		j := js.Addresses[i]
		if want := sc.PlayerAddress(a.Client, a.Media); j.Player != want {
			t.Errorf("playerAddress(%q,%q): js %q go %q", a.Client, a.Media, j.Player, want)
		}
		client, media, ok := sc.ParsePlayerAddress(a.Parse)
		if ok != (j.Parsed != nil) || (ok && (client != j.Parsed.Client || media != j.Parsed.Media)) {
			t.Errorf("parsePlayerAddress(%q): js %+v go %q %q %v", a.Parse, j.Parsed, client, media, ok)
		}
		if want := sc.UserAddress(a.User); j.User != want {
			t.Errorf("userAddress: js %q go %q", j.User, want)
		}
		if want := sc.ConferenceAddress(a.User, a.Conf); j.Conf != want {
			t.Errorf("conferenceAddress: js %q go %q", j.Conf, want)
		}
		if want := sc.IsIndex(a.Parse); j.Index != want {
			t.Errorf("isIndex(%q): js %v go %v", a.Parse, j.Index, want)
		}
	}
	f := sc.Players.Fields
	for jsName, goName := range map[string]string{
		"service": f.Service, "remote": f.Remote, "conference": f.Conference, "encoding": f.Encoding,
		"playerState": f.PlayerState, "mgwState": f.MgwState, "mgwURL": f.MgwURL, "progress": f.Progress,
		"sipStatus": f.SipStatus, "sipReason": f.SipReason, "caller": f.Caller, "callID": f.CallID,
		"dtmf": f.DTMF, "hold": f.Hold, "holdIntent": f.HoldIntent,
	} {
		if js.Fields.Players[jsName] != goName {
			t.Errorf("players field %s: js %q go %q", jsName, js.Fields.Players[jsName], goName)
		}
	}
	u := sc.Users.Fields
	for jsName, goName := range map[string]string{
		"name": u.Name, "sipURI": u.SipURI, "registration": u.Registration,
		"registrationError": u.RegistrationError, "conferences": u.Conferences,
	} {
		if js.Fields.Users[jsName] != goName {
			t.Errorf("users field %s: js %q go %q", jsName, js.Fields.Users[jsName], goName)
		}
	}
	if js.Fields.Participants["display"] != sc.Users.ParticipantFields.Display ||
		js.Fields.Participants["status"] != sc.Users.ParticipantFields.Status {
		t.Errorf("participant fields: js %v", js.Fields.Participants)
	}
}

const g711Script = `
import { encode, decode } from './g711.js';
const all = new Int16Array(65536);
for (let i = 0; i < 65536; i++) all[i] = i - 32768;
const codes = new Uint8Array(256).map((_, i) => i);
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
process.stdout.write(JSON.stringify({
  ulawEnc: b64(encode('PCMU', all)), alawEnc: b64(encode('PCMA', all)),
  ulawDec: b64(decode('PCMU', codes)), alawDec: b64(decode('PCMA', codes)),
}));
`

// TestG711AgreesWithReference checks g711.js against zaf/g711 on every 16-bit sample
// (encode) and every code (decode), for both laws.
func TestG711AgreesWithReference(t *testing.T) {
	t.Parallel()
	node := testpeer.Need(t, "node")
	cmd := exec.Command(node, "--input-type=module", "-e", g711Script)
	cmd.Dir, _ = filepath.Abs(".")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	var js struct{ UlawEnc, AlawEnc, UlawDec, AlawDec []byte }
	if err := json.Unmarshal(out, &js); err != nil {
		t.Fatal(err)
	}
	if len(js.UlawEnc) != 65536 || len(js.AlawEnc) != 65536 || len(js.UlawDec) != 512 || len(js.AlawDec) != 512 {
		t.Fatalf("node output sizes %d %d %d %d", len(js.UlawEnc), len(js.AlawEnc), len(js.UlawDec), len(js.AlawDec))
	}
	for i := range 65536 {
		s := int16(i - 32768)
		if got, want := js.UlawEnc[i], g711.EncodeUlawFrame(s); got != want {
			t.Fatalf("mu-law encode %d: js %#x zaf %#x", s, got, want)
		}
		if got, want := js.AlawEnc[i], g711.EncodeAlawFrame(s); got != want {
			t.Fatalf("A-law encode %d: js %#x zaf %#x", s, got, want)
		}
	}
	for c := range 256 {
		u := int16(binary.LittleEndian.Uint16(js.UlawDec[2*c:]))
		if want := g711.DecodeUlawFrame(uint8(c)); u != want {
			t.Fatalf("mu-law decode %#x: js %d zaf %d", c, u, want)
		}
		a := int16(binary.LittleEndian.Uint16(js.AlawDec[2*c:]))
		if want := g711.DecodeAlawFrame(uint8(c)); a != want {
			t.Fatalf("A-law decode %#x: js %d zaf %d", c, a, want)
		}
	}
}
