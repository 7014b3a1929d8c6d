package store

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyspacePattern matches the keyspace events of every object's field and meta hashes.
const keyspacePattern = "__keyspace@*__:dsm:{*}:[fm]:*"

// keyspaceLoop listens to keyspace events on every master (in a Redis Cluster they are
// node-local) and schedules a reconcile for watched objects. On any error it closes all
// subscriptions and starts again, which also picks up a new set of masters after a
// failover, and sets notify-keyspace-events again on a node that came back without it.
func (f *Feed) keyspaceLoop(ctx context.Context) error {
	for ctx.Err() == nil {
		err := f.listenKeyspace(ctx)
		if ctx.Err() != nil {
			break
		}
		f.log.Warn("keyspace listener stopped; restarting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(f.cfg.Retry):
		}
	}
	return ctx.Err()
}

// listenKeyspace makes sure every master sends the events (ensureNotify), subscribes on
// each, and checks the setting again every KeyspaceCheck until a subscription fails or
// ctx ends.
func (f *Feed) listenKeyspace(ctx context.Context) error {
	var clients []*redis.Client
	var mu sync.Mutex
	err := forEachMaster(ctx, f.st.rdb, func(_ context.Context, c *redis.Client) error {
		mu.Lock()
		clients = append(clients, c)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	// Before subscribing: a node that restarted without the setting (or never had it)
	// sends nothing until it is set again. A node that refuses CONFIG (a managed Redis)
	// is still listened to: its own configuration may hold the setting.
	for _, c := range clients {
		if _, err := f.ensureNotify(ctx, c); err != nil && isConnError(err) {
			return err
		}
	}
	errc := make(chan error, len(clients))
	var subs []*redis.PubSub
	var wg sync.WaitGroup
	// Closing a PubSub is what unblocks its reader (ReceiveMessage does not watch ctx), so
	// every exit path closes them all before waiting for the readers.
	defer func() {
		for _, ps := range subs {
			ps.Close()
		}
		wg.Wait()
	}()
	for _, c := range clients {
		ps := c.PSubscribe(ctx, keyspacePattern)
		subs = append(subs, ps)
		if _, err := ps.Receive(ctx); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := ps.ReceiveMessage(ctx)
				if err != nil {
					errc <- err
					return
				}
				// "__keyspace@<db>__:<key>"
				_, key, found := strings.Cut(msg.Channel, "__:")
				if !found {
					continue
				}
				if obj, meta, ok := addrFromEventKey(key); ok {
					f.event(obj, meta, msg.Payload)
					for _, h := range f.keyspace.load() {
						h.fn(obj, meta, msg.Payload)
					}
				}
			}
		}()
	}
	// Events may have been missed while no subscription was up.
	f.reconcileAll()
	tick := time.NewTicker(f.cfg.KeyspaceCheck)
	defer tick.Stop()
	for {
		select {
		case err = <-errc:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			// A CONFIG SET by someone else drops the setting without cutting the
			// subscription; so does a restart too quick for the subscription to notice.
			missed := false
			for _, c := range clients {
				set, _ := f.ensureNotify(ctx, c)
				missed = missed || set
			}
			if missed {
				f.reconcileAll() // writes made while it was missing sent no event
			}
		}
	}
}

// isConnError reports whether err is the node not answering (rather than refusing a
// command): the listener then starts over, as for a failed subscription.
func isConnError(err error) bool {
	var re redis.Error
	return err != nil && !errors.As(err, &re)
}

// watch is the reconcile state of one watched object. The commit script follows every
// write to the field hash with a write to the meta hash, and the events of one script reach
// us in order and uninterrupted; so a field event still "open" (not followed by a meta
// event) when the next field event or the timer comes was made outside the commit path.
type watch struct {
	n       int    // Watch calls not undone
	open    bool   // a field event not yet followed by a meta event
	last    string // the open event's name
	suspect bool   // an outside write was seen; reconcile when the timer fires
	pending bool
}

// event accounts for one keyspace event on obj's field hash (meta false) or meta hash.
func (f *Feed) event(obj string, meta bool, name string) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	w := f.watched[obj]
	if w == nil {
		return
	}
	if meta {
		w.open = false
		return
	}
	if w.open && !(name == "del" && w.last == "hdel") { // HDEL emptying the hash adds "del"
		w.suspect = true // the previous field event had no meta event after it
	}
	w.open, w.last = true, name
	f.scheduleLocked(obj, w)
}

// scheduleLocked runs the reconcile script for obj after ReconcileDelay when an outside
// write was seen by then (or a field event is still open: no meta event followed it),
// unless a run is already pending. f.wmu must be held.
func (f *Feed) scheduleLocked(obj string, w *watch) {
	if w.pending {
		return
	}
	w.pending = true
	time.AfterFunc(f.cfg.ReconcileDelay, func() {
		f.wmu.Lock()
		w.pending = false
		run := w.suspect || w.open
		w.suspect, w.open = false, false
		f.wmu.Unlock()
		if run {
			f.reconcile(obj)
		}
	})
}

// reconcileAll reconciles every watched object: after the keyspace subscription was
// (re)established, events may have been missed.
func (f *Feed) reconcileAll() {
	f.wmu.Lock()
	for obj, w := range f.watched {
		w.suspect = true
		f.scheduleLocked(obj, w)
	}
	f.wmu.Unlock()
}

func (f *Feed) reconcile(obj string) {
	ctxp := f.runCtx.Load()
	if ctxp == nil || (*ctxp).Err() != nil {
		return
	}
	ctx, cancel := context.WithTimeout(*ctxp, 5*time.Second)
	defer cancel()
	if _, err := f.st.Reconcile(ctx, obj); err != nil {
		f.log.Warn("reconcile failed", "obj", obj, "err", err)
	}
}

// OnKeyspace registers fn for every keyspace event on any object's field hash (meta
// false) or meta hash (meta true), with the event name ("hset", "hdel", "del" ...). It
// runs on the listener goroutine and must not block. Components that want a second wake-up
// path besides the change feed use it rather than a subscription of their own. The
// returned func removes it.
func (f *Feed) OnKeyspace(fn func(obj string, meta bool, event string)) (cancel func()) {
	return f.keyspace.add(fn)
}
