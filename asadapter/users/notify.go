package users

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/confinfo"
	"dsmgw/store"
)

// notifyCommitTimeout bounds the DSM write done while a NOTIFY waits for its answer: the
// notifier retransmits over UDP after 500 ms and gives up after 32 s; 5 s leaves the
// transaction layer time to absorb the retransmissions.
const notifyCommitTimeout = 5 * time.Second

// HandleNotify answers a NOTIFY: it routes it by Call-ID to the subscription it belongs
// to and answers 481 when there is none. Mount it with Adapter.OnRequest(sip.NOTIFY, ...).
func (u *Users) HandleNotify(req *sip.Request, tx sip.ServerTransaction) {
	cid := req.CallID()
	var s *subscription
	if cid != nil {
		u.mu.Lock()
		s = u.subs[cid.Value()]
		u.mu.Unlock()
	}
	if s == nil {
		u.met.notifies.WithLabelValues("no_subscription").Inc()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist")
		return
	}
	s.handleNotify(req, tx)
}

func (u *Users) bindSub(callID string, s *subscription) {
	u.mu.Lock()
	u.subs[callID] = s
	u.mu.Unlock()
}

func (u *Users) unbindSub(callID string) {
	u.mu.Lock()
	delete(u.subs, callID)
	u.mu.Unlock()
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// handleNotify answers one NOTIFY of the subscription: 489 for another event package,
// 415 for another body type, 400/413 for a body it cannot use (and asks for full state
// again), 500 when the DSM write fails, else 200.
func (s *subscription) handleNotify(req *sip.Request, tx sip.ServerTransaction) {
	met := s.u.met.notifies
	if ev := req.GetHeader("Event"); ev == nil || !strings.EqualFold(headerToken(ev.Value()), "conference") {
		met.WithLabelValues("bad_event").Inc()
		respond(tx, req, 489, "Bad Event")
		return
	}
	state, params := "", map[string]string{}
	if h := req.GetHeader("Subscription-State"); h != nil {
		state, params = parseSubState(h.Value())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tag, _ := req.From().Params.Get("tag")
	if s.toTag != "" && tag != s.toTag {
		// A second dialog forked from our SUBSCRIBE: we keep the first one.
		met.WithLabelValues("no_subscription").Inc()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist")
		return
	}
	if s.ending {
		// We are ending the subscription and have cleared its list: the notifier's last
		// word is acknowledged and changes nothing; "timeout" or "deactivated" here is
		// the answer to our unsubscribe, not an invitation to subscribe again.
		respond(tx, req, sip.StatusOK, "OK")
		met.WithLabelValues("ending").Inc()
		if state == "terminated" {
			s.endedByNotifier()
		}
		return
	}
	s.adoptDialog(req, tag, params)
	result := s.applyBody(req)
	switch result {
	case "malformed":
		respond(tx, req, sip.StatusBadRequest, "Bad conference-info")
	case "too_large":
		respond(tx, req, sip.StatusRequestEntityTooLarge, "Request Entity Too Large")
	case "bad_type":
		respond(tx, req, sip.StatusUnsupportedMediaType, "Unsupported Media Type")
	case "store_error":
		respond(tx, req, sip.StatusInternalServerError, "Server Internal Error")
	default:
		respond(tx, req, sip.StatusOK, "OK")
	}
	met.WithLabelValues(result).Inc()
	if state == "terminated" {
		s.log.Info("users: subscription terminated by the notifier", "reason", params["reason"])
		s.terminated(params)
	}
}

// adoptDialog takes from a NOTIFY what the SUBSCRIBE's 200 may not have delivered yet
// (the NOTIFY can overtake it): the remote tag, target and route set, and a shorter
// lifetime in Subscription-State (s.mu held).
func (s *subscription) adoptDialog(req *sip.Request, tag string, params map[string]string) {
	if s.toTag == "" {
		s.toTag = tag
	}
	if c := req.Contact(); c != nil {
		s.remote = c.Address
	}
	if s.routes == nil {
		for _, h := range req.GetHeaders("Record-Route") {
			if rr, ok := h.(*sip.RecordRouteHeader); ok {
				s.routes = append(s.routes, rr.Address)
			}
		}
	}
	if v, ok := params["expires"]; ok && s.established {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			if at := time.Now().Add(max(time.Duration(n)*time.Second/2, minRefresh)); at.Before(s.refreshAt) {
				s.refreshAt = at
			}
		}
	}
}

// applyBody parses and merges the body and writes the list; it returns the metric label
// of the outcome (s.mu held).
func (s *subscription) applyBody(req *sip.Request) string {
	body := req.Body()
	if len(body) == 0 {
		return "empty" // pending or terminated without state
	}
	if ct := req.ContentType(); ct != nil && !strings.EqualFold(headerToken(ct.Value()), confinfo.ContentType) {
		return "bad_type"
	}
	ci, err := confinfo.Parse(body, s.u.cfg.ConfInfo)
	if err != nil {
		s.u.met.parseErrors.Inc()
		s.log.Warn("users: conference-info refused; asking for full state", "err", err)
		s.roster.Restart()
		s.poke()
		if errors.Is(err, confinfo.ErrBodyTooLarge) {
			return "too_large"
		}
		return "malformed"
	}
	applied, err := s.roster.Apply(ci)
	if err != nil {
		// A gap or a partial before full state: refresh, which brings full state.
		s.log.Info("users: conference-info out of sequence; refreshing for full state", "err", err)
		s.poke()
		return "gap"
	}
	if !applied {
		return "stale"
	}
	fields, dropped := s.roster.Fields(confinfo.ParticipantNames{
		Display: s.u.schema.Users.ParticipantFields.Display,
		Status:  s.u.schema.Users.ParticipantFields.Status,
	}, s.u.cfg.MaxParticipants)
	if dropped > 0 {
		s.log.Warn("users: participants left out of the DSM list", "dropped", dropped)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), notifyCommitTimeout)
	defer cancel()
	if err := s.commitFields(ctx, fields); err != nil {
		s.log.Warn("users: write participant list", "err", err)
		s.roster.Restart()
		s.poke()
		return "store_error"
	}
	return "applied"
}

// commitFields makes the DSM list equal fields, writing only the difference, in ops of at
// most the store's MaxOps elements (s.mu held). A list that changes by more than that is
// written in several commits, each atomic.
func (s *subscription) commitFields(ctx context.Context, fields map[string]string) error {
	var ops []store.Op
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if old, ok := s.written[k]; !ok || old != fields[k] {
			ops = append(ops, store.Set(k, fields[k]))
		}
	}
	gone := make([]string, 0)
	for k := range s.written {
		if _, ok := fields[k]; !ok {
			gone = append(gone, k)
		}
	}
	sort.Strings(gone)
	for _, k := range gone {
		ops = append(ops, store.Del(k))
	}
	chunk := s.u.st.Config().Limits.MaxOps
	if chunk <= 0 {
		chunk = len(ops)
	}
	for len(ops) > 0 {
		n := min(chunk, len(ops))
		if _, err := s.u.st.Commit(ctx, store.Commit{Obj: s.obj, Base: -1, Ops: ops[:n]}); err != nil {
			return fmt.Errorf("users: write %s: %w", s.obj, err)
		}
		store.Apply(s.written, ops[:n])
		ops = ops[n:]
	}
	return nil
}

// headerToken is the value of a header before its parameters ("conference;id=1" →
// "conference").
func headerToken(v string) string {
	t, _, _ := strings.Cut(v, ";")
	return strings.TrimSpace(t)
}

// parseSubState splits a Subscription-State value ("active;expires=600").
func parseSubState(v string) (string, map[string]string) {
	parts := strings.Split(v, ";")
	params := map[string]string{}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[strings.ToLower(k)] = strings.TrimSpace(val)
	}
	return strings.ToLower(strings.TrimSpace(parts[0])), params
}
