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
	"time"
)

// maxRequestBody bounds an API request body; real ones are well under 2 KiB.
const maxRequestBody = 64 << 10

// APIHandler serves the JSON API. It routes on the full path: mount it at
// /v1/terminations and /v1/terminations/ (or at /v1/ in a process of its own).
func (g *Gateway) APIHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.authorized(r) {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "mediagw: missing or wrong bearer secret")
			return
		}
		g.route(w, r)
	})
}

// MediaHandler serves the browser's WebSocket attach. Mount it at /media/.
func (g *Gateway) MediaHandler() http.Handler { return http.HandlerFunc(g.serveMedia) }

func (g *Gateway) authorized(r *http.Request) bool {
	got := r.Header.Get("Authorization")
	want := "Bearer " + g.cfg.Secret
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (g *Gateway) route(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/v1/terminations")
	if !ok {
		writeError(w, http.StatusNotFound, CodeNotFound, "mediagw: no such API path "+r.URL.Path)
		return
	}
	rest = strings.Trim(rest, "/")
	if rest == "" {
		switch r.Method {
		case http.MethodPost:
			g.handleAdd(w, r)
		case http.MethodGet:
			g.handleList(w, r)
		default:
			methodNotAllowed(w, "GET, POST")
		}
		return
	}
	id, sub, _ := strings.Cut(rest, "/")
	t := g.lookup(id)
	if t == nil {
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("mediagw: termination %s: not found", id))
		return
	}
	switch {
	case sub == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, t.view())
	case sub == "" && r.Method == http.MethodPatch:
		var req ModifyRequest
		if !decode(w, r, &req) {
			return
		}
		if err := t.modify(req); err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, http.StatusOK, t.view())
	case sub == "" && r.Method == http.MethodDelete:
		g.mu.Lock()
		mine := g.terms[id] == t
		delete(g.terms, id)
		g.mu.Unlock()
		if !mine {
			writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("mediagw: termination %s: not found", id))
			return
		}
		t.close()
		g.m.ended.WithLabelValues("deleted").Inc()
		t.log.Info("mediagw: termination deleted")
		w.WriteHeader(http.StatusNoContent)
	case sub == "":
		methodNotAllowed(w, "GET, PATCH, DELETE")
	case sub == "remote" && r.Method == http.MethodPut:
		var req Remote
		if !decode(w, r, &req) {
			return
		}
		hold := false
		if p := t.peer.Load(); p != nil {
			hold = p.hold
		}
		if err := t.setPeer(req, hold); err != nil {
			writeErr(w, err)
			return
		}
		t.log.Info("mediagw: remote termination added", "remote", req.Address, "rtp_port", req.RTPPort)
		writeJSON(w, http.StatusOK, t.mediaURL(time.Now()))
	case sub == "token" && r.Method == http.MethodPost:
		if t.peer.Load() == nil {
			writeErr(w, fmt.Errorf("%w: termination %s has no remote yet", ErrConflict, id))
			return
		}
		writeJSON(w, http.StatusOK, t.mediaURL(time.Now()))
	case sub == "dtmf" && r.Method == http.MethodPost:
		var req DTMFRequest
		if !decode(w, r, &req) {
			return
		}
		digits, err := parseDTMF(req)
		if err == nil {
			err = t.queueDTMF(digits)
		}
		if err != nil {
			writeErr(w, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case sub == "remote":
		methodNotAllowed(w, "PUT")
	case sub == "token" || sub == "dtmf":
		methodNotAllowed(w, "POST")
	default:
		writeError(w, http.StatusNotFound, CodeNotFound, "mediagw: no such API path "+r.URL.Path)
	}
}

func (g *Gateway) handleAdd(w http.ResponseWriter, r *http.Request) {
	var req AddLocalRequest
	if !decode(w, r, &req) {
		return
	}
	if err := validateAddLocal(req); err != nil {
		writeErr(w, err)
		return
	}
	t, err := g.addLocal(req)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, LocalTermination{ID: t.id, Address: g.cfg.PublicAddr,
		RTPPort: t.port, RTCPPort: t.port + 1})
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
	owner := r.URL.Query().Get("owner")
	out := TerminationList{Terminations: []Termination{}}
	for _, t := range g.snapshotTerms() {
		if owner == "" || t.owner == owner {
			out.Terminations = append(out.Terminations, t.view())
		}
	}
	writeJSON(w, http.StatusOK, out)
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
