package users

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/confinfo"
	"dsmgw/asadapter/sipport"
	"dsmgw/store"
)

// unsubscribeTimeout bounds the end of a subscription (SUBSCRIBE Expires: 0, clearing the
// DSM list and waiting for the notifier's terminating NOTIFY): 5 s, as a NOTIFY's commit;
// a notifier that does not answer by then lets the subscription expire on its own, and a
// NOTIFY later than that gets 481.
const unsubscribeTimeout = 5 * time.Second

// subscription is one user's RFC 4575 subscription to one conference (Event: conference).
// Its run goroutine sends SUBSCRIBE and refreshes; NOTIFYs arrive on sipgo's goroutines
// and are merged into the roster and the DSM list users/<user>/conf/<id>.
type subscription struct {
	u       *Users
	log     *slog.Logger
	cred    credentials
	aor     sip.Uri
	display string // the user's display name, for P-Preferred-Identity
	confID  string
	uri     sip.Uri
	obj     string        // users/<user>/conf/<id>
	kick    chan struct{} // capacity 1: refresh now (version gap, terminated, bad body)
	ctx     context.Context
	unsubOK atomic.Bool // on stop, send SUBSCRIBE Expires: 0 and clear the DSM list

	mu          sync.Mutex // guards the dialog, roster and written below
	callID      string
	fromTag     string
	toTag       string
	cseq        uint32
	contact     sip.Uri
	remote      sip.Uri   // remote target
	routes      []sip.Uri // route set
	established bool
	since       time.Time // when the dialog was established
	notBefore   time.Time // no new SUBSCRIBE before this (after the notifier ended one)
	refreshAt   time.Time
	roster      *confinfo.Roster
	written     map[string]string // the DSM list as we last wrote it
	// ending is set once the subscription is being ended by us (SUBSCRIBE Expires: 0
	// sent or about to be): NOTIFYs are still answered in the dialog but change nothing,
	// and the terminating one closes final instead of asking for a new subscription.
	ending bool
	final  chan struct{} // closed by the terminating NOTIFY while ending
}

// subHandle is a running subscription owned by a user worker.
type subHandle struct {
	s      *subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// syncSubs starts and stops subscriptions to match the conferences of users/<user>.
func (w *userWorker) syncSubs(ctx context.Context) {
	ids, ok := w.conferences(ctx)
	if !ok {
		return
	}
	aor, err := sipport.ParseAOR(w.rec.SIPURI)
	if err != nil {
		return
	}
	want := map[string]sip.Uri{}
	for _, id := range ids {
		if err := store.ValidAddress(w.u.schema.ConferenceAddress(w.user, id)); err != nil {
			w.log.Warn("users: conference id unusable as a DSM address; skipped", "conference", id, "err", err)
			continue
		}
		uri, err := w.u.conferenceURI(id, aor)
		if err != nil {
			w.log.Warn("users: conference URI; skipped", "conference", id, "err", err)
			continue
		}
		want[id] = uri
	}
	for id, h := range w.subs {
		if uri, ok := want[id]; !ok || uri.String() != h.s.uri.String() {
			h.stop(true)
			delete(w.subs, id)
		}
	}
	for id, uri := range want {
		if _, ok := w.subs[id]; ok {
			continue
		}
		s := &subscription{
			u: w.u, log: w.log.With("conference", id), cred: credentials{w.rec.AuthUser, w.rec.Password},
			aor: aor, display: w.rec.Display, confID: id, uri: uri, obj: w.u.schema.ConferenceAddress(w.user, id),
			kick: make(chan struct{}, 1), roster: confinfo.NewRoster(), final: make(chan struct{}),
			contact: w.u.contactFor(w.user, uri),
		}
		sctx, cancel := context.WithCancel(ctx)
		s.ctx = sctx
		h := &subHandle{s: s, cancel: cancel, done: make(chan struct{})}
		w.subs[id] = h
		go func() { defer close(h.done); s.run(sctx) }()
	}
}

// stopSubs stops every subscription; with unsubscribe, each is ended at the notifier and
// its DSM list cleared (logout, conference removed) rather than left for a taker. They
// end in parallel: each may wait for its notifier's terminating NOTIFY.
func (w *userWorker) stopSubs(unsubscribe bool) {
	for _, h := range w.subs {
		h.signalStop(unsubscribe)
	}
	for id, h := range w.subs {
		<-h.done
		delete(w.subs, id)
	}
}

func (h *subHandle) stop(unsubscribe bool) {
	h.signalStop(unsubscribe)
	<-h.done
}

func (h *subHandle) signalStop(unsubscribe bool) {
	h.s.unsubOK.Store(unsubscribe)
	h.cancel()
}

// conferenceURI turns a conferences entry into the URI to subscribe to.
func (u *Users) conferenceURI(id string, aor sip.Uri) (sip.Uri, error) {
	var uri sip.Uri
	if strings.HasPrefix(id, "sip:") || strings.HasPrefix(id, "sips:") {
		if err := sip.ParseUri(id, &uri); err != nil {
			return uri, err
		}
		return uri, nil
	}
	host := u.cfg.ConferenceDomain
	if host == "" {
		host = aor.Host
		if aor.Port != 0 {
			host += ":" + strconv.Itoa(aor.Port)
		}
	}
	err := sip.ParseUri("sip:"+id+"@"+host, &uri)
	return uri, err
}

func (s *subscription) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// run subscribes, refreshes at half the granted lifetime, and subscribes afresh when the
// dialog is gone (481, timeout, terminated by the notifier).
func (s *subscription) run(ctx context.Context) {
	s.loadWritten(ctx)
	backoff := time.Duration(0)
	for ctx.Err() == nil {
		s.mu.Lock()
		est, due, notBefore := s.established, s.refreshAt, s.notBefore
		s.mu.Unlock()
		if !est {
			if d := time.Until(notBefore); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
				continue
			}
			if err := s.subscribe(ctx, true); err != nil {
				if ctx.Err() != nil {
					break
				}
				backoff = min(max(backoff*2, s.u.cfg.RetryMin), s.u.cfg.RetryMax)
				s.log.Warn("users: SUBSCRIBE failed; retrying", "err", err, "in", backoff)
				s.wait(ctx, time.Now().Add(backoff))
				continue
			}
			backoff = 0
			continue
		}
		s.wait(ctx, due)
		if ctx.Err() != nil {
			break
		}
		s.mu.Lock()
		est = s.established
		s.mu.Unlock()
		if !est {
			continue // the notifier ended the dialog while we waited: start a new one
		}
		if err := s.subscribe(ctx, false); err != nil && ctx.Err() == nil {
			s.log.Info("users: subscription refresh failed; subscribing afresh", "err", err)
		}
	}
	s.end()
}

func (s *subscription) wait(ctx context.Context, until time.Time) {
	t := time.NewTimer(max(time.Until(until), time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-s.kick:
	case <-t.C:
	}
}

// subscribe sends an initial (new dialog) or in-dialog SUBSCRIBE. Any failure of a
// refresh drops the dialog, so the next round starts a new one.
func (s *subscription) subscribe(ctx context.Context, initial bool) error {
	req := s.build(initial, s.u.cfg.SubscribeExpires)
	res, err := s.u.send(ctx, req, s.cred)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := req.CSeq(); c != nil && c.SeqNo > s.cseq {
		s.cseq = c.SeqNo
	}
	if err == nil && !res.IsSuccess() {
		err = fmt.Errorf("users: SUBSCRIBE %s: %d %s", s.uri.String(), res.StatusCode, res.Reason)
	}
	if err != nil {
		s.dropDialog()
		return err
	}
	if tag, ok := res.To().Params.Get("tag"); ok && s.toTag == "" {
		s.toTag = tag
	}
	if initial {
		if rr := res.GetHeaders("Record-Route"); len(rr) > 0 && s.routes == nil {
			for i := len(rr) - 1; i >= 0; i-- {
				if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
					s.routes = append(s.routes, h.Address)
				}
			}
		}
		if c := res.Contact(); c != nil {
			s.remote = c.Address
		}
	}
	granted := s.u.cfg.SubscribeExpires
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			granted = time.Duration(n) * time.Second
		}
	}
	if granted <= 0 {
		s.dropDialog()
		return fmt.Errorf("users: SUBSCRIBE %s: granted no lifetime", s.uri.String())
	}
	if !s.established {
		s.since = time.Now()
		s.u.met.subscriptions.Inc()
		s.log.Info("users: subscribed", "call_id", s.callID, "expires", granted)
	}
	s.established = true
	s.refreshAt = time.Now().Add(max(granted/2, minRefresh))
	return nil
}

// build makes a SUBSCRIBE; initial starts a new dialog (new Call-ID and tag).
func (s *subscription) build(initial bool, expires time.Duration) *sip.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if initial {
		if s.callID != "" {
			s.u.unbindSub(s.callID)
		}
		s.callID, s.fromTag, s.toTag = newToken(16), newToken(8), ""
		s.routes, s.remote = nil, s.uri
		s.roster.Restart() // a new dialog's notifier may number versions afresh
		s.u.bindSub(s.callID, s)
	}
	s.cseq++
	req := sip.NewRequest(sip.SUBSCRIBE, s.remote)
	from := &sip.FromHeader{Address: s.aor, Params: sip.NewParams()}
	from.Params.Add("tag", s.fromTag)
	to := &sip.ToHeader{Address: s.uri, Params: sip.NewParams()}
	if s.toTag != "" {
		to.Params.Add("tag", s.toTag)
	}
	cid := sip.CallIDHeader(s.callID)
	for _, r := range s.routes {
		req.AppendHeader(&sip.RouteHeader{Address: r})
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: s.cseq, MethodName: sip.SUBSCRIBE})
	req.AppendHeader(&sip.ContactHeader{Address: s.contact})
	// RFC 3325: the identity the user wants the CSCF to assert, as on the user's calls.
	req.AppendHeader(sip.NewHeader("P-Preferred-Identity", sipport.NameAddr(s.display, s.aor)))
	req.AppendHeader(sip.NewHeader("Event", "conference"))
	req.AppendHeader(sip.NewHeader("Accept", confinfo.ContentType))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	req.SetBody(nil)
	return req
}

// terminated handles a NOTIFY ending the subscription (s.mu held): per RFC 6665 section
// 4.1.3, "deactivated" and "timeout" invite an immediate new subscription, "probation"
// and "giveup" one after retry-after, "noresource" and "rejected" none soon (the conference
// is gone: we try again after RetryMax, as it may be created again). A notifier that ends
// every subscription at once is not re-subscribed more often than every RetryMin.
func (s *subscription) terminated(params map[string]string) {
	wait := time.Duration(0)
	switch params["reason"] {
	case "deactivated", "timeout", "":
	case "noresource", "rejected":
		wait = s.u.cfg.RetryMax
	default:
		wait = s.u.cfg.RetryMin
		if n, err := strconv.Atoi(params["retry-after"]); err == nil && n > 0 {
			wait = min(time.Duration(n)*time.Second, time.Hour)
		}
	}
	if time.Since(s.since) < s.u.cfg.RetryMin {
		wait = max(wait, s.u.cfg.RetryMin)
	}
	s.notBefore = time.Now().Add(wait)
	s.dropDialog()
	s.poke()
}

// dropDialog forgets the dialog (s.mu held); the run loop subscribes afresh.
func (s *subscription) dropDialog() {
	if s.established {
		s.u.met.subscriptions.Dec()
	}
	s.established = false
}

// end runs when the subscription stops: unsubscribe and clear the DSM list if asked. The
// dialog stays known until the notifier's terminating NOTIFY (RFC 6665 section 4.1.2.3),
// or unsubscribeTimeout, so that NOTIFY is answered 200 rather than 481.
func (s *subscription) end() {
	// Detached from the subscription's context, which has ended: the unsubscribe, the
	// clearing of the list and the wait still complete, within unsubscribeTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), unsubscribeTimeout)
	defer cancel()
	s.mu.Lock()
	est := s.established
	s.ending = true
	s.mu.Unlock()
	if s.unsubOK.Load() {
		confirmed := false
		if est {
			req := s.build(false, 0)
			res, err := s.u.send(ctx, req, s.cred)
			confirmed = err == nil && res.IsSuccess()
			if !confirmed {
				s.log.Info("users: unsubscribe not confirmed", "err", err)
			}
		}
		s.mu.Lock()
		s.roster = confinfo.NewRoster()
		if err := s.commitFields(ctx, map[string]string{}); err != nil {
			s.log.Warn("users: clear participant list", "err", err)
		}
		s.mu.Unlock()
		if confirmed {
			select {
			case <-s.final:
			case <-ctx.Done():
				s.log.Info("users: no terminating NOTIFY after the unsubscribe")
			}
		}
	}
	s.mu.Lock()
	s.dropDialog()
	s.u.unbindSub(s.callID)
	s.mu.Unlock()
}

// endedByNotifier records the terminating NOTIFY of a subscription we are ending (s.mu
// held): it ends the wait of end, and nothing subscribes again.
func (s *subscription) endedByNotifier() {
	select {
	case <-s.final:
	default:
		close(s.final)
	}
}

// loadWritten reads the DSM list as it is (a previous holder may have written it), so the
// first full state removes participants that left meanwhile.
func (s *subscription) loadWritten(ctx context.Context) {
	r, err := s.u.st.Snapshot(ctx, s.obj)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = map[string]string{}
	if err != nil {
		s.log.Warn("users: read participant list", "err", err)
		return
	}
	for k, v := range r.Fields {
		s.written[k] = v
	}
}
