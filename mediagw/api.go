package mediagw

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxRequestBody bounds an API request body; real ones are well under 2 KiB.
const maxRequestBody = 64 << 10

// APIHandler serves the JSON API. It routes on the full path: mount it at
// /v1/terminations and /v1/terminations/ (or at /v1/ in a process of its own).
//
//	POST   /v1/terminations              add a local termination: 201
//	GET    /v1/terminations[?owner=]     list: 200
//	GET    /v1/terminations/{id}         get one: 200
//	PATCH  /v1/terminations/{id}         modify (hold, remote, payload types): 200
//	DELETE /v1/terminations/{id}         delete: 204
//	PUT    /v1/terminations/{id}/remote  add the remote: 200 with the media URL
//	POST   /v1/terminations/{id}/token   a fresh media URL: 200
//	POST   /v1/terminations/{id}/dtmf    queue RFC 4733 digits: 202
//
// Every error, 404 and 405 included, is a JSON APIError (the Go client maps it back to
// a sentinel), so the mux's plain-text answers are replaced by catch-all patterns.
func (g *Gateway) APIHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/terminations", g.handleAdd)
	mux.HandleFunc("GET /v1/terminations", g.handleList)
	mux.HandleFunc("/v1/terminations", allowOnly("GET, POST"))
	mux.HandleFunc("GET /v1/terminations/{id}", g.withTerm(g.handleGet))
	mux.HandleFunc("PATCH /v1/terminations/{id}", g.withTerm(g.handleModify))
	mux.HandleFunc("DELETE /v1/terminations/{id}", g.withTerm(g.handleDelete))
	mux.HandleFunc("/v1/terminations/{id}", g.withTerm(termAllowOnly("GET, PATCH, DELETE")))
	mux.HandleFunc("PUT /v1/terminations/{id}/remote", g.withTerm(g.handleRemote))
	mux.HandleFunc("/v1/terminations/{id}/remote", g.withTerm(termAllowOnly("PUT")))
	mux.HandleFunc("POST /v1/terminations/{id}/token", g.withTerm(g.handleToken))
	mux.HandleFunc("/v1/terminations/{id}/token", g.withTerm(termAllowOnly("POST")))
	mux.HandleFunc("POST /v1/terminations/{id}/dtmf", g.withTerm(g.handleDTMF))
	mux.HandleFunc("/v1/terminations/{id}/dtmf", g.withTerm(termAllowOnly("POST")))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "mediagw: no such API path "+r.URL.Path)
	})
	return g.authorize(mux)
}

// MediaHandler serves the browser's WebSocket attach at /media/{id}. Mount it at /media/.
func (g *Gateway) MediaHandler() http.Handler {
	mux := http.NewServeMux()
	// Any method reaches serveMedia: the token is checked first, then the upgrader
	// answers a non-GET itself.
	mux.HandleFunc("/media/{id}", g.serveMedia)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, CodeNotFound, "mediagw: no such media path")
	})
	return mux
}

// authorize answers 401 to a request without the bearer secret, before any routing, so
// without the secret nobody learns which paths or termination ids exist.
func (g *Gateway) authorize(next http.Handler) http.Handler {
	want := []byte("Bearer " + g.cfg.Secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "mediagw: missing or wrong bearer secret")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// termHandler handles a request about one live termination.
type termHandler func(w http.ResponseWriter, r *http.Request, t *termination)

// withTerm looks the {id} of the path up and answers 404 when no such termination lives;
// a wrong method on an unknown id is a 404 too (the lookup comes first).
func (g *Gateway) withTerm(h termHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		t := g.lookup(id)
		if t == nil {
			writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("mediagw: termination %s: not found", id))
			return
		}
		h(w, r, t)
	}
}

func (g *Gateway) handleGet(w http.ResponseWriter, _ *http.Request, t *termination) {
	writeJSON(w, http.StatusOK, t.view())
}

func (g *Gateway) handleModify(w http.ResponseWriter, r *http.Request, t *termination) {
	var req ModifyRequest
	if !decode(w, r, &req) {
		return
	}
	if err := t.modify(req); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t.view())
}

func (g *Gateway) handleDelete(w http.ResponseWriter, _ *http.Request, t *termination) {
	if err := g.delete(t); err != nil {
		// Ended or deleted between the lookup and here.
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("mediagw: termination %s: not found", t.id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) handleRemote(w http.ResponseWriter, r *http.Request, t *termination) {
	var req Remote
	if !decode(w, r, &req) {
		return
	}
	u, err := t.addRemote(req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (g *Gateway) handleToken(w http.ResponseWriter, _ *http.Request, t *termination) {
	u, err := t.newURL()
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

func (g *Gateway) handleDTMF(w http.ResponseWriter, r *http.Request, t *termination) {
	var req DTMFRequest
	if !decode(w, r, &req) {
		return
	}
	if err := t.sendDTMF(req); err != nil {
		writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (g *Gateway) handleAdd(w http.ResponseWriter, r *http.Request) {
	var req AddLocalRequest
	if !decode(w, r, &req) {
		return
	}
	lt, err := g.AddLocal(r.Context(), req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, lt)
}

func validateAddLocal(req AddLocalRequest) error {
	if req.Owner == "" || len(req.Owner) > 128 {
		return fmt.Errorf("%w: owner: want 1-128 bytes", ErrBadRequest)
	}
	if len(req.CallID) > 256 || len(req.Player) > 256 {
		return fmt.Errorf("%w: call_id and player: at most 256 bytes", ErrBadRequest)
	}
	if req.EventURL != "" {
		u, err := url.Parse(req.EventURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: event_url %q: want an absolute http(s) URL", ErrBadRequest, req.EventURL)
		}
	}
	return nil
}

func (g *Gateway) handleList(w http.ResponseWriter, r *http.Request) {
	terms, _ := g.List(r.Context(), r.URL.Query().Get("owner"))
	writeJSON(w, http.StatusOK, TerminationList{Terminations: terms})
}

// decode reads one JSON object with no unknown fields into v, answering 400/413 itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "mediagw: request body: "+err.Error())
		return false
	}
	if err := decodeJSON(body, v); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

// decodeJSON is the strict request parser: exactly one JSON object, known fields only.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrBadRequest, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: request body: trailing data after the JSON object", ErrBadRequest)
	}
	return nil
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "mediagw: method not allowed, use "+allow)
}

// allowOnly answers 405 naming the allowed methods: the mux's own 405 is plain text.
func allowOnly(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { methodNotAllowed(w, allow) }
}

// termAllowOnly is allowOnly behind withTerm.
func termAllowOnly(allow string) termHandler {
	return func(w http.ResponseWriter, _ *http.Request, _ *termination) { methodNotAllowed(w, allow) }
}

// writeErr maps an error to its status and code by its sentinel.
func writeErr(w http.ResponseWriter, err error) {
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, ErrBadRequest):
		status, code = http.StatusBadRequest, CodeBadRequest
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, CodeNotFound
	case errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, CodeConflict
	case errors.Is(err, ErrUnavailable):
		status, code = http.StatusServiceUnavailable, CodeUnavailable
	case errors.Is(err, ErrUnauthorized):
		status, code = http.StatusUnauthorized, CodeUnauthorized
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "mediagw") {
		msg = "mediagw: " + msg
	}
	writeError(w, status, code, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, APIError{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
