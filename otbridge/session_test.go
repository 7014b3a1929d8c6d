package otbridge_test

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/internal/testpeer"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// TestSessions: GET /session?user= mints user-bound tokens only in demo mode; the site's
// backend mints them with POST /v1/sessions (bearer = the secret) or signs them itself as
// docs/dsm-protocol.md describes; each token reads its own user's objects and no other's.
func TestSessions(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := newRedisClient(t, r.Addr)
	prod := startInstance(t, rdb, otbridge.Config{}, store.Config{}, nil)
	demo := startInstance(t, rdb, otbridge.Config{DemoSessions: true}, store.Config{}, nil)

	get := func(in *instance, q string) (int, otbridge.Session) {
		t.Helper()
		resp, err := http.Get(in.srv.URL + "/session" + q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var s otbridge.Session
		_ = json.NewDecoder(resp.Body).Decode(&s)
		return resp.StatusCode, s
	}
	post := func(bearer, body string) (int, otbridge.Session) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, prod.srv.URL+"/v1/sessions", strings.NewReader(body))
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var s otbridge.Session
		_ = json.Unmarshal(b, &s)
		return resp.StatusCode, s
	}

	if code, _ := get(prod, "?user=bob"); code != http.StatusForbidden {
		t.Fatalf("GET /session?user= outside demo mode: %d, want 403", code)
	}
	code, anon := get(prod, "")
	if code != http.StatusOK || anon.User != "" || anon.Token == "" {
		t.Fatalf("anonymous session: %d %+v", code, anon)
	}
	if code, s := get(prod, "?refresh="+anon.Token); code != http.StatusOK || s.Client != anon.Client {
		t.Fatalf("refresh: %d %+v", code, s)
	}
	if code, s := get(demo, "?user=bob"); code != http.StatusOK || s.User != "bob" {
		t.Fatalf("demo mode: %d %+v", code, s)
	}
	if code, s := get(demo, "?user=bob%2Fx"); code != http.StatusBadRequest {
		t.Fatalf("demo mode, a user that cannot be one: %d %+v, want 400", code, s)
	}
	for name, tc := range map[string]struct {
		bearer, body string
		want         int
	}{
		"no bearer":     {"", `{"user":"bob"}`, http.StatusUnauthorized},
		"wrong bearer":  {"not the secret", `{"user":"bob"}`, http.StatusUnauthorized},
		"bad user":      {string(secret), `{"user":"bob/x"}`, http.StatusBadRequest},
		"unknown field": {string(secret), `{"usr":"bob"}`, http.StatusBadRequest},
		"ttl too long":  {string(secret), `{"user":"bob","ttl_seconds":999999999}`, http.StatusBadRequest},
		"not json":      {string(secret), `user=bob`, http.StatusBadRequest},
		// 10^10 s in nanoseconds overflows int64 into a negative lifetime: once a 201 with
		// an expired token.
		"ttl overflowing": {string(secret), `{"user":"bob","ttl_seconds":10000000000}`, http.StatusBadRequest},
		"two objects":     {string(secret), `{"user":"bob"} {"user":"eve"}`, http.StatusBadRequest},
		"anonymous":       {string(secret), ``, http.StatusCreated},
		"short ttl":       {string(secret), `{"user":"bob","ttl_seconds":60}`, http.StatusCreated},
	} {
		if code, s := post(tc.bearer, tc.body); code != tc.want {
			t.Errorf("POST /v1/sessions %s: %d %+v, want %d", name, code, s, tc.want)
		}
	}
	code, bob := post(string(secret), `{"user":"bob"}`)
	if code != http.StatusCreated || bob.User != "bob" || len(bob.Client) != 26 {
		t.Fatalf("POST /v1/sessions: %d %+v", code, bob)
	}

	// A token a backend signed itself, from the doc alone: claims JSON (its own spacing),
	// base64url without padding, HMAC-SHA256 over the claims bytes.
	var kb [16]byte
	_, _ = rand.Read(kb[:])
	key := strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(kb[:]))
	claims := fmt.Sprintf(`{"k": %q, "u": "alice", "exp": %d}`, key, time.Now().Add(time.Hour).Unix())
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(claims))
	alice := base64.RawURLEncoding.EncodeToString([]byte(claims)) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))

	for name, tc := range map[string]struct {
		token string
		read  map[string]bool // object → readable
	}{
		"anonymous": {anon.Token, map[string]bool{"users": true, "users/bob": false, "users/bob/conf/c1": false,
			"players/" + anon.Client + "/audio": true, "players": false}},
		"bob": {bob.Token, map[string]bool{"users": true, "users/bob": true, "users/bob/conf/c1": true,
			"users/alice": false, "users/alice/conf/c1": false, "users/bobby": false}},
		"alice, signed by the backend": {alice, map[string]bool{"users/alice": true, "users/bob": false,
			"players/" + key + "/audio": true}},
	} {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, prod.url)
			c.hello(tc.token)
			for obj, ok := range tc.read {
				c.send(`{"t":"sub","obj":"` + obj + `"}`)
				m := c.recv()
				if ok != (m["t"] == "snap") || (!ok && m["code"] != otbridge.CodeForbidden) {
					t.Errorf("sub %s: got %v, readable %v", obj, m, ok)
				}
			}
		})
	}
}

// TestOriginChecked: the upgrade to /dsm refuses a browser page of another origin (403),
// and takes one of the gateway's own origin and a client that sends no Origin.
func TestOriginChecked(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	in := startInstance(t, newRedisClient(t, r.Addr), otbridge.Config{}, store.Config{}, nil)
	own := in.srv.URL // http://127.0.0.1:port
	for origin, want := range map[string]int{
		"http://evil.example": http.StatusForbidden,
		own + "1":             http.StatusForbidden, // another port
		own:                   http.StatusSwitchingProtocols,
		"":                    http.StatusSwitchingProtocols,
	} {
		h := http.Header{}
		if origin != "" {
			h.Set("Origin", origin)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(in.url, h)
		if ws != nil {
			ws.Close()
		}
		if resp == nil {
			t.Fatalf("Origin %q: no answer: %v", origin, err)
		}
		if resp.StatusCode != want {
			t.Errorf("Origin %q: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}
