package users

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/icsi"
	"dsmgw/asadapter/sipport"
	"dsmgw/store"
)

// userWorker drives one user held by this instance: its registration, the DSM state in
// users/<user> and its conference subscriptions. Everything but kick is owned by the run
// goroutine.
type userWorker struct {
	u     *Users
	user  string
	token string // our lease value
	log   *slog.Logger
	kick  chan struct{} // capacity 1: a pending wake-up is enough
	// handoff carries Handoff's request to hand the user over (handoff.go), answered with
	// whether it moved; done is closed when the worker has ended.
	handoff chan chan bool
	done    chan struct{}

	rec        *regRecord
	callID     string // REGISTER Call-ID: the same for every refresh (RFC 3261 10.2)
	fromTag    string
	cseq       uint32
	contact    sip.Uri // the Contact we registered
	registered bool
	refreshAt  time.Time
	expiresAt  time.Time // when the registrar drops our binding unless refreshed
	retryAt    time.Time
	backoff    time.Duration
	minExpires time.Duration // from a 423 Interval Too Brief
	// transportFails counts REGISTERs in a row that got no response.
	transportFails int

	want    regView // what users/<user> should say
	written regView // what it said after our last successful commit
	gauge   string  // state counted in the registrations gauge ("" before the first)

	subs map[string]*subHandle // conference id → running subscription

	// services are the IMS services the user's page offers (users/<user> services), and
	// regServices those the last successful REGISTER's Contact carried: a change
	// registers again at once, so the S-CSCF routes each service to us.
	services, regServices []icsi.Service
}

// regView is the part of users/<user> the worker writes.
type regView struct{ state, err, sipURI string }

func newUserWorker(u *Users, user, token string) *userWorker {
	return &userWorker{
		u: u, user: user, token: token,
		log:     u.log.With("user", user),
		kick:    make(chan struct{}, 1),
		handoff: make(chan chan bool),
		done:    make(chan struct{}),
		callID:  newToken(16),
		fromTag: newToken(8),
		subs:    map[string]*subHandle{},
	}
}

// poke wakes the worker without blocking.
func (w *userWorker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *userWorker) contactString() string { return w.contact.String() }

// run is the worker's loop; it returns when the session ended (after logging out), when
// the lease is lost, or when ctx ends (then without unregistering: another instance takes
// the user over).
func (w *userWorker) run(ctx context.Context) {
	w.log.Info("users: holding user")
	renew := time.NewTicker(w.u.cfg.LeaseTTL / 3)
	defer renew.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer func() {
		w.stopSubs(false)
		w.setGauge("")
		w.u.releaseLease(ctx, w.user, w.token)
	}()
	for {
		if done := w.step(ctx); done {
			return
		}
		next := w.retryAt
		if w.registered {
			next = w.refreshAt
		}
		if w.rec != nil && w.rec.Deadline.Before(next) {
			next = w.rec.Deadline // the session ends then: log out on time
		}
		timer.Reset(max(time.Until(next), time.Millisecond))
		select {
		case <-ctx.Done():
			w.log.Info("users: released at shutdown")
			return
		case res := <-w.handoff:
			res <- w.giveUp(ctx)
			return
		case <-w.kick:
		case <-timer.C:
		case <-renew.C:
			if err := w.u.renewLease(ctx, w.user, w.token); err != nil {
				if isRedisDown(err) {
					w.log.Warn("users: renew lease", "err", err)
					continue
				}
				w.log.Warn("users: lease lost to another instance; letting go")
				return
			}
		}
	}
}

// step reads the record and does what is due. It reports whether the worker is done.
func (w *userWorker) step(ctx context.Context) bool {
	rec, err := w.u.loadRecord(ctx, w.user)
	if err != nil {
		w.log.Warn("users: read registration", "err", err)
		w.retryAt = time.Now().Add(w.u.cfg.RetryMin)
		return false
	}
	now := time.Now()
	if rec == nil || !rec.Deadline.After(now) {
		w.logout(ctx, rec)
		return true
	}
	if w.rec != nil && !w.rec.sameCredentials(rec) {
		w.log.Info("users: credentials changed; registering again")
		w.stopSubs(true)
		w.unregister(ctx)
		w.callID, w.fromTag, w.backoff, w.minExpires = newToken(16), newToken(8), 0, 0
		w.retryAt = now
	}
	if w.rec == nil {
		w.retryAt = now
	}
	keepContact := ""
	if w.rec != nil {
		keepContact = w.rec.Contact
	}
	w.rec = rec
	if keepContact != "" {
		w.rec.Contact = keepContact
	}
	if s, ok := w.offered(ctx); ok {
		w.services = s
	}
	changed := w.registered && !slices.Equal(w.services, w.regServices)
	if changed {
		w.log.Info("users: the page offers other services; registering again", "services", fmt.Sprint(w.services))
	}
	if (w.registered && (changed || !now.Before(w.refreshAt))) || (!w.registered && !now.Before(w.retryAt)) {
		w.register(ctx)
	}
	w.want.sipURI = rec.SIPURI
	w.flush(ctx)
	if w.registered {
		w.syncSubs(ctx)
	} else {
		w.stopSubs(false)
	}
	return false
}

// logout ends the session: subscriptions are ended, the binding removed, the DSM told,
// and the record deleted (unless it was posted again meanwhile).
func (w *userWorker) logout(ctx context.Context, rec *regRecord) {
	if w.rec == nil && rec != nil {
		// Taken over after the holder died: unregister what it left, with its credentials.
		w.rec = rec
		if rec.Contact != "" && rec.CallID != "" {
			var c sip.Uri
			if sip.ParseUri(rec.Contact, &c) == nil {
				w.contact, w.callID, w.registered = c, rec.CallID, true
				w.cseq = uint32(time.Now().Unix() & 0x7fffffff) // above any CSeq the holder used
			}
		}
	}
	w.stopSubs(true)
	w.unregister(ctx)
	w.want = regView{state: sipport.RegUnregistered}
	if w.rec != nil {
		w.want.sipURI = w.rec.SIPURI
	}
	w.flush(ctx)
	w.u.finishRecord(ctx, w.user)
	w.log.Info("users: session ended; logged out")
}

// writeState sets the registration state and error to write, and writes them.
func (w *userWorker) writeState(ctx context.Context, state, errText string) {
	w.want.state, w.want.err = state, errText
	if w.rec != nil {
		w.want.sipURI = w.rec.SIPURI
	}
	w.flush(ctx)
}

// flush commits users/<user> when it differs from what we last wrote. A failed commit is
// retried by the next step.
func (w *userWorker) flush(ctx context.Context) {
	w.setGauge(w.want.state)
	if w.want == w.written || w.want.state == "" {
		return
	}
	f := w.u.schema.Users.Fields
	ops := []store.Op{store.Set(f.Registration, w.want.state)}
	if w.want.err != "" {
		ops = append(ops, store.Set(f.RegistrationError, truncateUTF8(w.want.err, 512)))
	} else {
		ops = append(ops, store.Del(f.RegistrationError))
	}
	if w.want.sipURI != "" {
		ops = append(ops, store.Set(f.SipURI, w.want.sipURI))
	}
	// The browser's client key is not written: pages may read users/<user>, and a client
	// key is what a page is known by. It stays in the registration record (the Directory).
	// Deleting it here removes what an older version wrote.
	ops = append(ops, store.Del(legacyClientField))
	_, err := w.u.st.Commit(ctx, store.Commit{Obj: w.u.schema.UserAddress(w.user), Base: -1, Ops: ops})
	if err != nil {
		w.log.Warn("users: write registration state", "state", w.want.state, "err", err)
		return
	}
	w.written = w.want
}

// setGauge moves this user in the registrations gauge.
func (w *userWorker) setGauge(state string) {
	if state == w.gauge {
		return
	}
	if w.gauge != "" {
		w.u.met.registrations.WithLabelValues(w.gauge).Dec()
	}
	if state != "" {
		w.u.met.registrations.WithLabelValues(state).Inc()
	}
	w.gauge = state
}

// offered returns the IMS services the user's page offers (users/<user> services; none
// listed: MMTel). Unknown names are skipped: the REGISTER names what we can serve.
func (w *userWorker) offered(ctx context.Context) ([]icsi.Service, bool) {
	r, err := w.u.st.Snapshot(ctx, w.u.schema.UserAddress(w.user))
	if err != nil {
		w.log.Warn("users: read services", "err", err)
		return nil, false
	}
	var out []icsi.Service
	for _, name := range strings.Fields(r.Fields[w.u.schema.Users.Fields.Services]) {
		if s, err := icsi.Parse(name); err == nil && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		out = []icsi.Service{icsi.MMTel}
	}
	return out, true
}

// conferences returns the conference ids listed in users/<user>.
func (w *userWorker) conferences(ctx context.Context) ([]string, bool) {
	r, err := w.u.st.Snapshot(ctx, w.u.schema.UserAddress(w.user))
	if err != nil {
		w.log.Warn("users: read conferences", "err", err)
		return nil, false
	}
	return strings.Fields(r.Fields[w.u.schema.Users.Fields.Conferences]), true
}
