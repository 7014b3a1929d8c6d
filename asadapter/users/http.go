package users

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"dsmgw/asadapter/sipport"
	"dsmgw/store"
)

// maxRegisterBody bounds a registration request: its fields are short strings.
const maxRegisterBody = 4 << 10

// maxSessionTTL bounds the TTL a web server may ask for (a day: the session token of the
// DSM lives 12 h by default; a registration must not outlive forgotten browsers by much).
const maxSessionTTL = 24 * time.Hour

// RegisterRequest is the body of POST /v1/users/{user}/register.
type RegisterRequest struct {
	SIPURI   string `json:"sip_uri"`   // the address of record, sip:alice@ims.example.net
	AuthUser string `json:"auth_user"` // digest user name ("" when the CSCF does not challenge)
	Password string `json:"password"`
	Client   string `json:"client"`  // the browser's client key: incoming calls go to its player objects
	Display  string `json:"display"` // display name for From and the users index (optional)
	// TTLSeconds is how long the registration lives unless posted again (the session's
	// presence); 0 takes the configured SessionTTL.
	TTLSeconds int `json:"ttl_seconds"`
}

// RegisterResponse is the answer to POST and GET.
type RegisterResponse struct {
	User         string `json:"user"`
	Registration string `json:"registration"` // the state in users/<user> now
	Error        string `json:"registration_error,omitempty"`
	Expires      int64  `json:"expires"` // unix seconds when the session ends unless posted again
}

// HTTPHandler serves the registration API for the web server, authenticated by the shared
// secret as a bearer token:
//
//	POST   /v1/users/{user}/register  register (or refresh the session of) a web user: 202
//	GET    /v1/users/{user}/register  the registration state: 200, 404
//	DELETE /v1/users/{user}/register  log out (un-REGISTER, end subscriptions): 202, 404
//
// Registration is asynchronous: the state appears in users/<user> for the browser.
func (u *Users) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users/{user}/register", u.handlePost)
	mux.HandleFunc("GET /v1/users/{user}/register", u.handleGet)
	mux.HandleFunc("DELETE /v1/users/{user}/register", u.handleDelete)
	return u.authorize(mux)
}

func (u *Users) authorize(next http.Handler) http.Handler {
	want := []byte("Bearer " + u.cfg.Secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dsmgw-asadapter"`)
			httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (u *Users) handlePost(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	var req RegisterRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRegisterBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		httpError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	rec, err := u.validate(user, req)
	if err != nil {
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx := r.Context()
	if err := u.saveRecord(ctx, user, rec); err != nil {
		u.log.Error("users: save registration", "user", user, "err", err)
		httpError(w, http.StatusServiceUnavailable, "registration store unavailable")
		return
	}
	u.addToIndex(ctx, user, rec.Display)
	resp := u.view(ctx, user)
	resp.Expires = rec.Deadline.Unix()
	writeJSON(w, http.StatusAccepted, resp)
}

func (u *Users) handleGet(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if store.ValidAddress(u.schema.UserAddress(user)) != nil {
		httpError(w, http.StatusBadRequest, "bad user name")
		return
	}
	rec, err := u.loadRecord(r.Context(), user)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, "registration store unavailable")
		return
	}
	if rec == nil {
		httpError(w, http.StatusNotFound, "no registration")
		return
	}
	resp := u.view(r.Context(), user)
	resp.Expires = rec.Deadline.Unix()
	writeJSON(w, http.StatusOK, resp)
}

func (u *Users) handleDelete(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	if store.ValidAddress(u.schema.UserAddress(user)) != nil {
		httpError(w, http.StatusBadRequest, "bad user name")
		return
	}
	err := u.endSession(r.Context(), user)
	switch {
	case errors.Is(err, ErrNoRegistration):
		httpError(w, http.StatusNotFound, "no registration")
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, "registration store unavailable")
	default:
		writeJSON(w, http.StatusAccepted, u.view(r.Context(), user))
	}
}

// validate checks a registration request and turns it into a record.
func (u *Users) validate(user string, req RegisterRequest) (*regRecord, error) {
	if err := store.ValidAddress(u.schema.UserAddress(user)); err != nil || strings.Contains(user, "/") {
		return nil, fmt.Errorf("%w: user name %.64q must be one DSM address segment", ErrBadRegistration, user)
	}
	if _, err := sipport.ParseAOR(req.SIPURI); err != nil {
		return nil, fmt.Errorf("%w: sip_uri: %v", ErrBadRegistration, err)
	}
	if err := store.ValidAddress(req.Client); err != nil || strings.Contains(req.Client, "/") {
		return nil, fmt.Errorf("%w: client must be the browser's client key", ErrBadRegistration)
	}
	if len(req.AuthUser) > 256 || len(req.Password) > 256 || len(req.Display) > 256 || len(req.SIPURI) > 512 {
		return nil, fmt.Errorf("%w: a field is longer than 256 bytes", ErrBadRegistration)
	}
	if req.AuthUser == "" && req.Password != "" {
		return nil, fmt.Errorf("%w: password without auth_user", ErrBadRegistration)
	}
	ttl := u.cfg.SessionTTL
	if req.TTLSeconds < 0 || time.Duration(req.TTLSeconds)*time.Second > maxSessionTTL {
		return nil, fmt.Errorf("%w: ttl_seconds out of 0..%d", ErrBadRegistration, int(maxSessionTTL/time.Second))
	}
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	return &regRecord{
		SIPURI: req.SIPURI, AuthUser: req.AuthUser, Password: req.Password,
		Client: req.Client, Display: req.Display, Deadline: time.Now().Add(ttl),
	}, nil
}

// addToIndex lists the user in the users index (display name as value) unless listed.
func (u *Users) addToIndex(ctx context.Context, user, display string) {
	if display == "" {
		display = user
	}
	_, err := u.st.Commit(ctx, store.Commit{Obj: u.schema.Users.Index, Base: -1,
		Ops: []store.Op{store.ExpectAbsent(user), store.Set(user, display)}})
	if err != nil && !errors.Is(err, store.ErrExpectFailed) {
		u.log.Warn("users: add to users index", "user", user, "err", err)
	}
}

// view reads the registration state the browser sees.
func (u *Users) view(ctx context.Context, user string) RegisterResponse {
	resp := RegisterResponse{User: user, Registration: sipport.RegUnregistered}
	if r, err := u.st.Snapshot(ctx, u.schema.UserAddress(user)); err == nil {
		f := u.schema.Users.Fields
		if s := r.Fields[f.Registration]; s != "" {
			resp.Registration = s
		}
		resp.Error = r.Fields[f.RegistrationError]
	}
	return resp
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
