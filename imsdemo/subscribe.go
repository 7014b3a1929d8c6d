package imsdemo

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// maxQueued is how many partial changes wait for one subscriber before they are
// replaced by a full state: a subscriber that answers slowly gets one document with
// everything rather than a backlog.
const maxQueued = 8

// notifyTimeout bounds one NOTIFY transaction: Timer F (64*T1) of RFC 3261.
const notifyTimeout = 32 * time.Second

// subscription is one subscriber's dialog of Event: conference to a room (RFC 6665,
// notifier side). Its sender goroutine sends the NOTIFYs one at a time, in order: the
// full state first and after every refresh, then a partial document per change.
type subscription struct {
	s    *Server
	room *room
	log  *slog.Logger
	wake chan struct{} // capacity 1
	done chan struct{} // closed when the sender has exited

	mu       sync.Mutex // guards everything below
	dlg      dialog
	eventID  string    // the id parameter of the SUBSCRIBE's Event header
	expires  time.Time // end of the granted lifetime
	version  uint32    // of the last document sent
	needFull bool
	queue    []xUser // partial changes not sent yet
	count    int     // user-count at the last queued change
	// reason ends the subscription: the sender sends a terminated NOTIFY with it and
	// exits. withState adds the full state to that NOTIFY (a fetch: Expires 0 at once).
	reason    string
	withState bool
}

// enqueue queues a change (room.mu held).
func (sub *subscription) enqueue(u xUser, count int) {
	sub.mu.Lock()
	if len(sub.queue) >= maxQueued {
		sub.needFull, sub.queue = true, sub.queue[:0]
	} else if !sub.needFull {
		sub.queue = append(sub.queue, u)
		sub.count = count
	}
	sub.mu.Unlock()
	sub.poke()
}

func (sub *subscription) poke() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// terminate ends the subscription with a reason of RFC 6665 section 4.1.3.
func (sub *subscription) terminate(reason string, withState bool) {
	sub.mu.Lock()
	if sub.reason == "" {
		sub.reason, sub.withState = reason, withState
	}
	sub.mu.Unlock()
	sub.poke()
}

// onSubscribe handles SUBSCRIBE for Event: conference: a new subscription to a room (the
// room is created empty if needed, so a page may watch a room before anyone joins), a
// refresh, or an unsubscribe (Expires: 0).
func (s *Server) onSubscribe(req *sip.Request, tx sip.ServerTransaction) {
	if !wellFormed(req) {
		s.reply(tx, req, 400, "Bad Request", "", nil)
		return
	}
	ev := req.GetHeader("Event")
	event, evParams := "", ""
	if ev != nil {
		event, evParams, _ = strings.Cut(ev.Value(), ";")
	}
	if !strings.EqualFold(strings.TrimSpace(event), "conference") {
		s.reply(tx, req, 489, "Bad Event", "", nil, sip.NewHeader("Allow-Events", "conference"))
		return
	}
	if !acceptsConfInfo(req) {
		s.reply(tx, req, 406, "Not Acceptable", "", nil, sip.NewHeader("Accept", ConferenceInfoType))
		return
	}
	expires := s.cfg.SubscribeDefaultExpires
	if h := req.GetHeader("Expires"); h != nil {
		n, err := strconv.Atoi(strings.TrimSpace(h.Value()))
		if err != nil || n < 0 {
			s.reply(tx, req, 400, "Bad Request (Expires)", "", nil)
			return
		}
		expires = time.Duration(n) * time.Second
	}
	if expires > 0 && expires < s.cfg.SubscribeMinExpires {
		s.reply(tx, req, 423, "Interval Too Brief", "", nil,
			sip.NewHeader("Min-Expires", strconv.Itoa(int(s.cfg.SubscribeMinExpires/time.Second))))
		return
	}
	expires = min(expires, s.cfg.SubscribeMaxExpires)
	if tag, _ := req.To().Params.Get("tag"); tag != "" {
		s.refresh(req, tx, expires)
		return
	}
	name, kind := req.Recipient.User, s.kindOf(req.Recipient)
	if !validRoomName(name) || kind == KindEcho {
		s.reply(tx, req, 404, "Not Found", "", nil)
		return
	}
	if s.draining.Load() {
		s.reply(tx, req, 503, "Service Unavailable", "", nil, sip.NewHeader("Retry-After", "5"))
		return
	}
	callID := req.CallID().Value()
	sub := &subscription{s: s, wake: make(chan struct{}, 1), done: make(chan struct{}), needFull: true,
		log: s.log.With("call_id", callID, "room", name, "subscriber", bareURI(req.From().Address).String())}
	sub.dlg = newDialog(req, sip.GenerateTagN(16), name)
	sub.eventID = eventID(evParams)
	sub.expires = time.Now().Add(expires)
	r, err := s.reserveSub(name, kind, sub)
	if err != nil {
		sub.log.Info("subscription refused", "err", err)
		s.reply(tx, req, 503, "Service Unavailable", "", nil)
		return
	}
	sub.room = r
	s.addSub(sub)
	if expires == 0 {
		sub.terminate("timeout", true) // a fetch: the state once, then the end
	}
	s.reply(tx, req, 200, "OK", sub.dlg.localTag, nil, s.contact(name, sub.dlg.transport),
		sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	sub.log.Info("subscribed", "expires", expires)
	s.wg.Add(1)
	go func() { defer s.wg.Done(); sub.run(s.runContext()) }()
}

// refresh handles a SUBSCRIBE in an existing subscription: a new lifetime and a full
// state (RFC 6665 section 4.2.1.2), or with Expires 0 the end of it.
func (s *Server) refresh(req *sip.Request, tx sip.ServerTransaction, expires time.Duration) {
	sub := s.subByCallID(req.CallID().Value())
	if sub != nil {
		sub.mu.Lock()
		if !sub.dlg.matches(req) || sub.reason != "" {
			sub.mu.Unlock()
			sub = nil
		}
	}
	if sub == nil {
		s.reply(tx, req, 481, "Subscription Does Not Exist", "", nil)
		return
	}
	if !sub.dlg.inSequence(req) {
		sub.mu.Unlock()
		s.reply(tx, req, 500, "Server Internal Error (CSeq out of order)", "", nil)
		return
	}
	if c := req.Contact(); c != nil {
		sub.dlg.target = c.Address
	}
	sub.expires = time.Now().Add(expires)
	if expires > 0 {
		sub.needFull, sub.queue = true, sub.queue[:0]
	}
	sub.mu.Unlock()
	s.reply(tx, req, 200, "OK", "", nil, s.contact(sub.dlg.user, sub.dlg.transport),
		sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	if expires == 0 {
		sub.log.Info("unsubscribed")
		sub.terminate("timeout", false)
		return
	}
	sub.poke()
}

// run sends the subscription's NOTIFYs until it ends.
func (sub *subscription) run(ctx context.Context) {
	defer close(sub.done)
	defer sub.s.removeSub(sub)
	for {
		req, last := sub.next()
		if req == nil {
			select {
			case <-sub.wake:
				continue
			case <-ctx.Done():
				// Run is over without a drain (the drain terminates every subscription
				// first): nothing more can be sent.
				return
			}
		}
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
		res, err := sub.s.do(nctx, req)
		cancel()
		switch {
		case err != nil:
			sub.log.Info("NOTIFY failed; subscription ended", "err", err)
			return
		case res.StatusCode == 481:
			sub.log.Info("subscriber forgot the subscription; ended")
			return
		case !res.IsSuccess():
			// RFC 6665 section 4.2.2: a failure other than 481 ends it too (a 5xx
			// with Retry-After could be retried; the demo does not).
			sub.log.Info("NOTIFY refused; subscription ended", "status", res.StatusCode)
			return
		}
		if last {
			return
		}
	}
}

// next builds the next NOTIFY, or returns nil when there is nothing to send; last is
// true for the terminating one.
func (sub *subscription) next() (*sip.Request, bool) {
	r := sub.room
	r.mu.Lock() // the full state and the queue must agree: room before subscription
	defer r.mu.Unlock()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	// Changes already queued go out before the end, so a subscriber sees everyone leave
	// before the subscription ends (the shutdown).
	var doc *xConferenceInfo
	last := false
	switch {
	case len(sub.queue) > 0 && !sub.needFull:
		u := sub.queue[0]
		sub.queue = sub.queue[1:]
		doc = &xConferenceInfo{Entity: r.uri, State: statePartial,
			ConfState: &xConfState{UserCount: sub.count, Active: len(r.legs) > 0},
			Users:     &xUsers{State: statePartial, List: []xUser{u}}}
	case sub.reason != "":
		last = true
		if sub.withState {
			doc = r.fullState()
		}
	case sub.needFull:
		doc = r.fullState()
		sub.needFull, sub.queue = false, sub.queue[:0]
	default:
		return nil, false
	}
	state := "active;expires=" + strconv.Itoa(max(int(time.Until(sub.expires)/time.Second), 0))
	if last {
		state = "terminated;reason=" + sub.reason
	}
	var body []byte
	ct := ""
	if doc != nil {
		sub.version++
		doc.Version = sub.version
		body, ct = marshalConfInfo(doc), ConferenceInfoType
	}
	req := sub.s.request(&sub.dlg, sip.NOTIFY, ct, body)
	event := "conference"
	if sub.eventID != "" {
		event += ";id=" + sub.eventID
	}
	req.AppendHeader(sip.NewHeader("Event", event))
	req.AppendHeader(sip.NewHeader("Subscription-State", state))
	return req, last
}

// acceptsConfInfo reports whether the subscriber takes conference-info bodies (no
// Accept header means the event package's default, which is that).
func acceptsConfInfo(req *sip.Request) bool {
	hs := req.GetHeaders("Accept")
	if len(hs) == 0 {
		return true
	}
	for _, h := range hs {
		for _, v := range splitList(h.Value()) {
			t, _, _ := strings.Cut(v, ";")
			t = strings.ToLower(strings.TrimSpace(t))
			if t == ConferenceInfoType || t == "application/*" || t == "*/*" {
				return true
			}
		}
	}
	return false
}

// eventID returns the id parameter of an Event header's parameters.
func eventID(params string) string {
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "id") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
