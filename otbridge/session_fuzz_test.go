package otbridge

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseSessionRequest: no body panics the parser of POST /v1/sessions, and what it
// accepts is a valid user (or none) and a lifetime within (0, maxTTL], the same when the
// request is encoded and parsed again. ttl_seconds far beyond the maximum once overflowed
// into a negative lifetime that passed the check (a 201 with an expired token).
func FuzzParseSessionRequest(f *testing.F) {
	for _, s := range []string{``, ` `, `{}`, `{"user":"bob"}`, `{"user":"bob","ttl_seconds":60}`,
		`{"ttl_seconds":10000000000}`, `{"ttl_seconds":9223372036854775807}`, `{"ttl_seconds":-1}`,
		`{"user":"bob/x"}`, `{"user":".."}`, `{"usr":"bob"}`, `{"user":"bob"} {}`, `user=bob`, `null`,
		`{"user":"\ud800"}`, `{"ttl_seconds":1.5}`} {
		f.Add([]byte(s))
	}
	const maxTTL = time.Hour
	f.Fuzz(func(t *testing.T, body []byte) {
		req, ttl, err := parseSessionRequest(body, maxTTL)
		if err != nil {
			if req != (SessionRequest{}) || ttl != 0 {
				t.Fatalf("refused with %v but returned %+v %v", err, req, ttl)
			}
			return
		}
		if ttl <= 0 || ttl > maxTTL {
			t.Fatalf("%q: lifetime %v outside (0, %v]", body, ttl, maxTTL)
		}
		if req.User != "" && !validUser(req.User) {
			t.Fatalf("%q: user %q accepted", body, req.User)
		}
		again, _ := json.Marshal(req)
		req2, ttl2, err := parseSessionRequest(again, maxTTL)
		if err != nil || req2 != req || ttl2 != ttl {
			t.Fatalf("%q: re-parsed %s as %+v %v %v, want %+v %v", body, again, req2, ttl2, err, req, ttl)
		}
	})
}
