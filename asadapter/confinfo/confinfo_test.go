package confinfo

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func readConfInfo(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	t.Parallel()
	huge := "<conference-info xmlns=\"" + namespace + "\" entity=\"sip:c@x\" version=\"1\"><users>" +
		strings.Repeat("<user entity=\"sip:u@x\"/>", 20000) + "</users></conference-info>"
	manyUsers := "<conference-info entity=\"sip:c@x\" version=\"1\"><users>" +
		strings.Repeat("<user entity=\"sip:u@x\"/>", 1001) + "</users></conference-info>"
	manyEndpoints := "<conference-info entity=\"sip:c@x\" version=\"1\"><users><user entity=\"sip:u@x\">" +
		strings.Repeat("<endpoint entity=\"sip:e@x\"/>", 17) + "</user></users></conference-info>"
	tests := map[string]struct {
		body    string
		wantErr error
		check   func(t *testing.T, ci *Info)
	}{
		"full": {body: string(readConfInfo(t, "full.xml")), check: func(t *testing.T, ci *Info) {
			if ci.Entity != "sip:conf1@example.com" || ci.State != StateFull || ci.Version != 1 {
				t.Fatalf("header %+v", ci)
			}
			if ci.Users == nil || len(ci.Users.List) != 2 || ci.Users.State != StateFull {
				t.Fatalf("users %+v", ci.Users)
			}
			a := ci.Users.List[0]
			if a.Entity != "sip:alice@example.com" || *a.Display != "Alice" || len(a.Endpoints) != 1 ||
				*a.Endpoints[0].Status != "connected" {
				t.Fatalf("alice %+v", a)
			}
		}},
		"partial": {body: string(readConfInfo(t, "partial.xml")), check: func(t *testing.T, ci *Info) {
			if ci.State != StatePartial || ci.Version != 2 || ci.Users.State != StatePartial {
				t.Fatalf("%+v", ci)
			}
			if u := ci.Users.List[2]; u.State != StateDeleted || u.Entity != "sip:alice@example.com" {
				t.Fatalf("deleted user %+v", u)
			}
			if u := ci.Users.List[0]; u.Display != nil || u.State != StatePartial {
				t.Fatalf("partial user %+v", u)
			}
		}},
		"deleted": {body: string(readConfInfo(t, "deleted.xml")), check: func(t *testing.T, ci *Info) {
			if ci.State != StateDeleted || ci.Users != nil {
				t.Fatalf("%+v", ci)
			}
		}},
		"no namespace, default state": {body: `<conference-info entity="sip:c@x" version="7"/>`,
			check: func(t *testing.T, ci *Info) {
				if ci.State != StateFull || ci.Version != 7 {
					t.Fatalf("%+v", ci)
				}
			}},
		"empty":               {body: "", wantErr: ErrMalformed},
		"not xml":             {body: "hello", wantErr: ErrMalformed},
		"truncated":           {body: `<conference-info entity="sip:c@x" version="1"><users>`, wantErr: ErrMalformed},
		"wrong root":          {body: `<presence entity="sip:c@x" version="1"/>`, wantErr: ErrMalformed},
		"wrong namespace":     {body: `<conference-info xmlns="urn:x" entity="sip:c@x" version="1"/>`, wantErr: ErrMalformed},
		"no entity":           {body: `<conference-info version="1"/>`, wantErr: ErrMalformed},
		"no version":          {body: `<conference-info entity="sip:c@x"/>`, wantErr: ErrMalformed},
		"negative version":    {body: `<conference-info entity="sip:c@x" version="-1"/>`, wantErr: ErrMalformed},
		"version overflow":    {body: `<conference-info entity="sip:c@x" version="4294967296"/>`, wantErr: ErrMalformed},
		"bad state":           {body: `<conference-info entity="sip:c@x" version="1" state="half"/>`, wantErr: ErrMalformed},
		"user without entity": {body: `<conference-info entity="sip:c@x" version="1"><users><user/></users></conference-info>`, wantErr: ErrMalformed},
		"bad user state":      {body: `<conference-info entity="sip:c@x" version="1"><users><user entity="a" state="x"/></users></conference-info>`, wantErr: ErrMalformed},
		"bad status": {body: `<conference-info entity="sip:c@x" version="1"><users><user entity="a"><endpoint entity="e"><status>dancing</status></endpoint></user></users></conference-info>`,
			wantErr: ErrMalformed},
		"endpoint without entity": {body: `<conference-info entity="sip:c@x" version="1"><users><user entity="a"><endpoint/></user></users></conference-info>`,
			wantErr: ErrMalformed},
		"two users elements": {body: `<conference-info entity="sip:c@x" version="1"><users/><users/></conference-info>`, wantErr: ErrMalformed},
		"huge":               {body: huge, wantErr: ErrBodyTooLarge},
		"too many users":     {body: manyUsers, wantErr: ErrMalformed},
		"too many endpoints": {body: manyEndpoints, wantErr: ErrMalformed},
		"entity expansion":   {body: `<!DOCTYPE x [<!ENTITY a "aaaa">]><conference-info entity="&a;" version="1"/>`, wantErr: ErrMalformed},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ci, err := Parse([]byte(tc.body), Limits{})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ci)
		})
	}
}

type participant struct {
	Display string `json:"display"`
	Status  string `json:"status"`
}

func rosterView(t *testing.T, r *Roster) map[string]participant {
	t.Helper()
	f, _ := r.Fields(ParticipantNames{Display: "display", Status: "status"}, 0)
	out := map[string]participant{}
	for k, v := range f {
		var p participant
		if err := json.Unmarshal([]byte(v), &p); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		out[k] = p
	}
	return out
}

func mustParse(t *testing.T, body string) *Info {
	t.Helper()
	ci, err := Parse([]byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return ci
}

func TestRosterMerge(t *testing.T) {
	t.Parallel()
	r := NewRoster()
	if _, err := r.Apply(mustParse(t, string(readConfInfo(t, "partial.xml")))); !errors.Is(err, ErrNeedFullState) {
		t.Fatalf("partial first: %v", err)
	}
	if ok, err := r.Apply(mustParse(t, string(readConfInfo(t, "full.xml")))); !ok || err != nil {
		t.Fatalf("full: %v %v", ok, err)
	}
	v := rosterView(t, r)
	if len(v) != 2 || v["sip:alice@example.com"] != (participant{"Alice", "connected"}) ||
		v["sip:bob@example.com"] != (participant{"Bob", "alerting"}) {
		t.Fatalf("after full: %+v", v)
	}
	if ok, err := r.Apply(mustParse(t, string(readConfInfo(t, "partial.xml")))); !ok || err != nil {
		t.Fatalf("partial: %v %v", ok, err)
	}
	v = rosterView(t, r)
	if len(v) != 2 || v["sip:bob@example.com"] != (participant{"Bob", "connected"}) ||
		v["sip:carol@example.com"] != (participant{"Carol", "connected"}) {
		t.Fatalf("after partial: %+v", v)
	}
	// A repeat of version 2 is ignored.
	if ok, err := r.Apply(mustParse(t, string(readConfInfo(t, "partial.xml")))); ok || err != nil {
		t.Fatalf("repeat: %v %v", ok, err)
	}
	// Version 4 after 2: a gap.
	gap := `<conference-info entity="sip:conf1@example.com" state="partial" version="4"><users><user entity="sip:dave@x"/></users></conference-info>`
	if _, err := r.Apply(mustParse(t, gap)); !errors.Is(err, ErrVersionGap) || !r.NeedsFull() {
		t.Fatalf("gap: %v", err)
	}
	if len(rosterView(t, r)) != 2 {
		t.Fatal("a gap must not change the roster")
	}
	// Full state after the refresh replaces everything, whatever its version.
	full := `<conference-info entity="sip:conf1@example.com" version="1"><users><user entity="sip:dave@x"><endpoint entity="d"><status>on-hold</status><display-text>Dave</display-text></endpoint><endpoint entity="d2"><status>disconnected</status></endpoint></user></users></conference-info>`
	if ok, err := r.Apply(mustParse(t, full)); !ok || err != nil {
		t.Fatalf("full after gap: %v %v", ok, err)
	}
	v = rosterView(t, r)
	if len(v) != 1 || v["sip:dave@x"] != (participant{"Dave", "on-hold"}) {
		t.Fatalf("after refresh: %+v", v)
	}
	// users state="deleted" in a partial empties the list; root deleted too.
	if ok, err := r.Apply(mustParse(t, `<conference-info entity="c" state="partial" version="2"><users state="deleted"/></conference-info>`)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if len(rosterView(t, r)) != 0 {
		t.Fatal("users deleted")
	}
	if ok, err := r.Apply(mustParse(t, string(readConfInfo(t, "deleted.xml")))); !ok || err != nil {
		t.Fatal(ok, err)
	}
}

func TestRosterFieldsLimits(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`<conference-info entity="c" version="1"><users>`)
	b.WriteString(`<user entity="sip:` + strings.Repeat("x", 200) + `@x"/>`)
	for _, u := range []string{"a", "b", "c"} {
		b.WriteString(`<user entity="sip:` + u + `@x"><display-text>` + strings.Repeat("é", 200) + `</display-text></user>`)
	}
	b.WriteString(`</users></conference-info>`)
	r := NewRoster()
	if _, err := r.Apply(mustParse(t, b.String())); err != nil {
		t.Fatal(err)
	}
	f, dropped := r.Fields(ParticipantNames{Display: "display", Status: "status"}, 2)
	if len(f) != 2 || dropped != 2 || f["sip:a@x"] == "" || f["sip:b@x"] == "" {
		t.Fatalf("fields %d dropped %d: %v", len(f), dropped, f)
	}
	var p participant
	if err := json.Unmarshal([]byte(f["sip:a@x"]), &p); err != nil || len(p.Display) > maxDisplayBytes || !strings.HasPrefix(p.Display, "é") {
		t.Fatalf("display %q %v", p.Display, err)
	}
}

// FuzzConferenceInfo checks that no body makes the parser or the merge panic or hang, and
// that whatever parses also merges into a roster whose fields fit the DSM's limits.
func FuzzConferenceInfo(f *testing.F) {
	for _, n := range []string{"full.xml", "partial.xml", "deleted.xml"} {
		f.Add(readConfInfo(f, n))
	}
	f.Add([]byte(`<conference-info entity="c" version="1"><users><user entity="a"><endpoint entity="e"><status>connected</status></endpoint></user></users></conference-info>`))
	f.Add([]byte(`<conference-info entity="c" version="2" state="partial"><users state="partial"><user entity="a" state="deleted"/></users></conference-info>`))
	f.Add([]byte(`<conference-info`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ci, err := Parse(body, Limits{MaxBytes: 64 << 10})
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		r := NewRoster()
		if _, err := r.Apply(ci); err != nil && !errors.Is(err, ErrNeedFullState) {
			t.Fatal(err)
		}
		fields, _ := r.Fields(ParticipantNames{Display: "display", Status: "status"}, 256)
		for k, v := range fields {
			if k == "" || len(k) > maxParticipantField || len(v) > 4096 {
				t.Fatalf("field %q = %q out of limits", k, v)
			}
		}
	})
}

// bigConferenceInfo is a full state of n participants with one endpoint each.
func bigConferenceInfo(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<conference-info xmlns="%s" entity="sip:big@example.com" state="full" version="1"><users>`, namespace)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `<user entity="sip:user%d@example.com"><display-text>User %d</display-text>`+
			`<endpoint entity="sip:user%d@10.0.%d.%d"><status>connected</status><media id="1"><type>audio</type></media></endpoint></user>`,
			i, i, i, i/256, i%256)
	}
	b.WriteString(`</users></conference-info>`)
	return b.Bytes()
}

// BenchmarkConferenceInfo parses and merges a 250-participant full state into DSM fields.
// Each iteration also walks the same body's tokens with encoding/xml (the least any
// XML-based parser must spend), timed apart: merge-ns/op is the parse and merge alone and
// x-baseline its ratio to the token walk measured in the same run. ns/op covers both.
func BenchmarkConferenceInfo(b *testing.B) {
	body := bigConferenceInfo(250)
	names := ParticipantNames{Display: "display", Status: "status"}
	b.SetBytes(int64(len(body)))
	var base, work time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		dec := xml.NewDecoder(bytes.NewReader(body))
		for {
			if _, err := dec.Token(); err != nil {
				break
			}
		}
		t1 := time.Now()
		ci, err := Parse(body, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		r := NewRoster()
		if _, err := r.Apply(ci); err != nil {
			b.Fatal(err)
		}
		if f, _ := r.Fields(names, 256); len(f) != 250 {
			b.Fatal(len(f))
		}
		base += t1.Sub(t0)
		work += time.Since(t1)
		n++
	}
	b.ReportMetric(float64(work.Nanoseconds())/float64(n), "merge-ns/op")
	b.ReportMetric(float64(work)/float64(base), "x-baseline")
}
