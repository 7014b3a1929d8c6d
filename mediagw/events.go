package mediagw

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the HMAC signature of an event request.
const SignatureHeader = "X-Mgw-Signature"

// signatureTolerance is how old (or how far ahead) a signed event may be: wide enough for
// clock skew between hosts and delivery retries, narrow enough that a captured request
// cannot be replayed later.
const signatureTolerance = 5 * time.Minute

// maxEventBody bounds an event body; real ones are a few hundred bytes.
const maxEventBody = 64 << 10

// SignEvent returns the X-Mgw-Signature value for body at time t:
// "t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>".
func SignEvent(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(eventMAC(secret, ts, body))
}

func eventMAC(secret, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifyEvent checks a signature header value for body at time now.
func VerifyEvent(secret, header string, body []byte, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	if ts == "" || sig == "" {
		return fmt.Errorf("%w: missing t or v1", ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp", ErrBadSignature)
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return fmt.Errorf("%w: bad hex", ErrBadSignature)
	}
	if !hmac.Equal(got, eventMAC(secret, ts, body)) {
		return fmt.Errorf("%w: mismatch", ErrBadSignature)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > signatureTolerance || d < -signatureTolerance {
		return fmt.Errorf("%w: timestamp %s off by %s", ErrBadSignature, ts, d.Round(time.Second))
	}
	return nil
}

// EventHandler returns an http.Handler that receives the gateway's signed event POSTs,
// verifies them with secret and calls fn with each valid event (on the request's
// goroutine; fn should not block for long). It answers 204, 401 on a bad signature, 400 on
// a bad body and 405 on another method.
func EventHandler(secret string, fn func(Event)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "mediagw: events accept POST only")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBody))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "mediagw: event body: "+err.Error())
			return
		}
		if err := VerifyEvent(secret, r.Header.Get(SignatureHeader), body, time.Now()); err != nil {
			writeError(w, http.StatusUnauthorized, CodeUnauthorized, "mediagw: "+err.Error())
			return
		}
		ev, err := decodeEvent(body)
		if err != nil {
			writeError(w, http.StatusBadRequest, CodeBadRequest, err.Error())
			return
		}
		fn(ev)
		w.WriteHeader(http.StatusNoContent)
	})
}

func decodeEvent(body []byte) (Event, error) {
	var ev Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ev); err != nil {
		return ev, fmt.Errorf("mediagw: event body: %w", err)
	}
	if ev.Type == "" || ev.TerminationID == "" {
		return ev, fmt.Errorf("mediagw: event body: type and termination_id required")
	}
	return ev, nil
}

// pendingEvent is an event waiting for delivery to its owner's URL.
type pendingEvent struct {
	url string
	ev  Event
}

// deliverEvents posts queued events until ctx ends. Retries back off 0.5 s then 2 s:
// an AS adapter restarting takes a moment, and after ~3 s the owner will find the
// termination gone anyway.
func (g *Gateway) deliverEvents(ctx context.Context) {
	backoff := []time.Duration{0, 500 * time.Millisecond, 2 * time.Second}
	for {
		var p pendingEvent
		select {
		case <-ctx.Done():
			return
		case p = <-g.events:
		}
		body, err := json.Marshal(p.ev)
		if err != nil {
			continue
		}
		result := "failed"
		for _, d := range backoff {
			if d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
			if err = g.postEvent(ctx, p.url, body); err == nil {
				result = "delivered"
				break
			}
		}
		g.m.events.WithLabelValues(string(p.ev.Type), result).Inc()
		if err != nil {
			g.log.Warn("event not delivered", "termination", p.ev.TerminationID,
				"call_id", p.ev.CallID, "player", p.ev.Player, "type", p.ev.Type, "err", err)
		}
	}
}

// eventPostTimeout bounds one delivery attempt so a hung receiver cannot stall the queue.
const eventPostTimeout = 5 * time.Second

func (g *Gateway) postEvent(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, eventPostTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, SignEvent(g.cfg.Secret, time.Now(), body))
	resp, err := g.cfg.EventHTTPClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxEventBody))
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		return fmt.Errorf("event receiver answered %d", resp.StatusCode)
	}
	return nil
}

// notify hands ev to the in-process callback and, when the termination has an event URL,
// to the delivery queue (dropping and counting it when the queue is full).
func (g *Gateway) notify(url string, ev Event) {
	if fn := g.cfg.OnEvent; fn != nil {
		g.wg.Add(1)
		go func() { defer g.wg.Done(); fn(ev) }()
	}
	if url == "" {
		return
	}
	select {
	case g.events <- pendingEvent{url: url, ev: ev}:
	default:
		g.m.events.WithLabelValues(string(ev.Type), "dropped").Inc()
		g.log.Warn("event queue full, event dropped", "termination", ev.TerminationID,
			"call_id", ev.CallID, "player", ev.Player, "type", ev.Type)
	}
}
