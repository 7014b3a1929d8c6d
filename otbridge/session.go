package otbridge

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Session is the answer of GET /session and POST /v1/sessions.
type Session struct {
	Client  string `json:"client"`
	User    string `json:"user,omitempty"`
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

// SessionHandler returns the handler of GET /session: it makes a fresh client key and a
// token bound to it, or, with ?refresh=<token>, a fresh token for the same key and user
// (the old one must still be valid). ?user=U binds a user too, but only in demo mode
// (Config.DemoSessions): it would hand anyone a token for any user. In production the
// operator's web backend mints user-bound sessions (SessionsAPIHandler, or tokens it signs
// itself; docs/dsm-protocol.md, "Session").
func (b *Bridge) SessionHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		now := time.Now()
		q := r.URL.Query()
		if old := q.Get("refresh"); old != "" {
			prev, err := ParseToken(b.cfg.Secret, old, now)
			if err != nil {
				http.Error(w, "refresh: "+err.Error(), http.StatusUnauthorized)
				return
			}
			b.writeSession(w, http.StatusOK, prev.Client, prev.User, now.Add(b.cfg.TokenTTL))
			return
		}
		user := q.Get("user")
		if user != "" && !b.cfg.DemoSessions {
			http.Error(w, "user sessions come from the site's backend (POST /v1/sessions or a token it signs); "+
				"GET /session?user= is the demo mode only (DSM_DEMO_SESSIONS)", http.StatusForbidden)
			return
		}
		b.mint(w, user, now.Add(b.cfg.TokenTTL))
	})
}

// maxSessionRequestBytes bounds the body of POST /v1/sessions (a user name and a lifetime).
const maxSessionRequestBytes = 4096

// SessionRequest is the body of POST /v1/sessions; both fields are optional.
type SessionRequest struct {
	// User binds the session to a user (one address segment).
	User string `json:"user,omitempty"`
	// TTLSeconds is the token lifetime, at most (and by default) Config.TokenTTL.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// SessionsAPIHandler returns the handler of POST /v1/sessions, with which the operator's
// web backend mints a session for a page it has authenticated: Authorization: Bearer
// <Config.Secret>, body SessionRequest, answer Session (201). Whoever holds the secret can
// sign tokens itself just as well, so the bearer grants nothing the secret does not.
func (b *Bridge) SessionsAPIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		if !b.bearerOK(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dsm"`)
			http.Error(w, "missing or wrong bearer secret", http.StatusUnauthorized)
			return
		}
		var req SessionRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, maxSessionRequestBytes+1))
		if err == nil && len(body) > maxSessionRequestBytes {
			err = errors.New("body too large")
		}
		if err == nil && len(strings.TrimSpace(string(body))) > 0 {
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			err = dec.Decode(&req)
		}
		if err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		if req.User != "" && !validUser(req.User) {
			http.Error(w, "user must be one address segment of [A-Za-z0-9._:@+-]", http.StatusBadRequest)
			return
		}
		ttl := b.cfg.TokenTTL
		if req.TTLSeconds < 0 || time.Duration(req.TTLSeconds)*time.Second > ttl {
			http.Error(w, "ttl_seconds must be between 1 and "+ttl.String(), http.StatusBadRequest)
			return
		}
		if req.TTLSeconds > 0 {
			ttl = time.Duration(req.TTLSeconds) * time.Second
		}
		b.mintStatus(w, http.StatusCreated, req.User, time.Now().Add(ttl))
	})
}

// bearerOK compares the request's bearer with the secret in constant time.
func (b *Bridge) bearerOK(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), b.cfg.Secret) == 1
}

func (b *Bridge) mint(w http.ResponseWriter, user string, exp time.Time) {
	b.mintStatus(w, http.StatusOK, user, exp)
}

// mintStatus makes a fresh client key and answers a session for it.
func (b *Bridge) mintStatus(w http.ResponseWriter, status int, user string, exp time.Time) {
	key, err := NewClientKey()
	if err != nil {
		b.log.Error("cannot make a client key", "err", err)
		http.Error(w, "cannot make a client key", http.StatusInternalServerError)
		return
	}
	b.writeSession(w, status, key, user, exp)
}

func (b *Bridge) writeSession(w http.ResponseWriter, status int, key, user string, exp time.Time) {
	c := Claims{Client: key, User: user, Exp: exp.Unix()}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // a token is personal: never cached
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(Session{Client: c.Client, User: c.User, Token: SignToken(b.cfg.Secret, c), Expires: c.Exp})
}
