package otbridge

import (
	"encoding/json"
	"net/http"
	"time"
)

// Session is the answer of GET /session.
type Session struct {
	Client  string `json:"client"`
	User    string `json:"user,omitempty"`
	Token   string `json:"token"`
	Expires int64  `json:"expires"`
}

// SessionHandler returns the handler of GET /session: it makes a fresh client key and a
// token bound to it (?user=U binds a user too), or, with ?refresh=<token>, a fresh token
// for the same key and user (the old one must still be valid).
func (b *Bridge) SessionHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		now := time.Now()
		var c Claims
		q := r.URL.Query()
		if old := q.Get("refresh"); old != "" {
			prev, err := ParseToken(b.cfg.Secret, old, now)
			if err != nil {
				http.Error(w, "refresh: "+err.Error(), http.StatusUnauthorized)
				return
			}
			c = prev
		} else {
			key, err := NewClientKey()
			if err != nil {
				b.log.Error("cannot make a client key", "err", err)
				http.Error(w, "cannot make a client key", http.StatusInternalServerError)
				return
			}
			c.Client = key
			if u := q.Get("user"); u != "" {
				if !validUser(u) {
					http.Error(w, "user must be one address segment of [A-Za-z0-9._:@+-]", http.StatusBadRequest)
					return
				}
				c.User = u
			}
		}
		c.Exp = now.Add(b.cfg.TokenTTL).Unix()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store") // a token is personal: never cached
		_ = json.NewEncoder(w).Encode(Session{Client: c.Client, User: c.User, Token: SignToken(b.cfg.Secret, c), Expires: c.Exp})
	})
}
