package otbridge

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
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
		if user != "" && !validUser(user) {
			// Refused here rather than minted into a token that every hello would refuse.
			http.Error(w, errBadUser, http.StatusBadRequest)
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
		body, err := io.ReadAll(io.LimitReader(r.Body, maxSessionRequestBytes+1))
		if err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		req, ttl, err := parseSessionRequest(body, b.cfg.TokenTTL)
		if err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		b.mintStatus(w, http.StatusCreated, req.User, time.Now().Add(ttl))
	})
}

// errBadUser is the refusal of a user name that cannot be one.
const errBadUser = "user must be one address segment of [A-Za-z0-9._:@+-]"

// parseSessionRequest checks the body of POST /v1/sessions (empty: an anonymous session
// of the longest lifetime) and returns it with the token lifetime, at most maxTTL.
func parseSessionRequest(body []byte, maxTTL time.Duration) (SessionRequest, time.Duration, error) {
	var req SessionRequest
	if len(body) > maxSessionRequestBytes {
		return req, 0, fmt.Errorf("body over %d bytes", maxSessionRequestBytes)
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return SessionRequest{}, 0, err
		}
		if dec.More() {
			return SessionRequest{}, 0, errors.New("data after the JSON object")
		}
	}
	if req.User != "" && !validUser(req.User) {
		return SessionRequest{}, 0, errors.New(errBadUser)
	}
	// Compared in seconds: a huge ttl_seconds times time.Second would overflow into a
	// negative lifetime that passes a comparison in nanoseconds.
	maxSec := int64(maxTTL / time.Second)
	if req.TTLSeconds < 0 || req.TTLSeconds > maxSec {
		return SessionRequest{}, 0, fmt.Errorf("ttl_seconds must be between 1 and %d", maxSec)
	}
	ttl := maxTTL
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	return req, ttl, nil
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
