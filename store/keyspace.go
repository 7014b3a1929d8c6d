package store

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyspacePattern matches the keyspace events of every object's field hash.
const keyspacePattern = "__keyspace@*__:dsm:{*}:f:*"

// keyspaceLoop listens to keyspace events on every master (in a Redis Cluster they are
// node-local) and schedules a reconcile for watched objects. On any error it closes all
// subscriptions and starts again, which also picks up a new set of masters after a
// failover.
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
				if obj, ok := addrFromFieldsKey(key); ok {
					f.event(obj, msg.Payload)
				}
			}
		}()
	}
	// Events may have been missed while no subscription was up.
	f.reconcileAll()
	select {
	case err = <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// watch is the reconcile state of one watched object. Every commit announces on the feed
// how many hset/hdel events it caused; an event with no commit to account for it is an
// outside write. The feed entry and the keyspace event travel on different connections,
// so either may come first: an event that finds credit consumes it; one that does not
// becomes debt, which a late feed entry pays off before the reconcile timer fires.
type watch struct {
	n        int // Watch calls not undone
	credit   int // events announced by commits, not yet seen
	creditAt time.Time
	debt     int // events seen, not (yet) announced
	pending  bool
}

// creditTTL bounds how long announced events wait to be seen. Both messages leave Redis
// within the same script run; a credit older than this was miscounted (an event lost
// with a dropped subscription), and keeping it would hide a later outside write.
const creditTTL = time.Second

// credit records events announced by a commit of obj.
func (f *Feed) credit(obj string, n int) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	w := f.watched[obj]
	if w == nil {
		return
	}
	pay := min(n, w.debt)
	w.debt -= pay
	if n -= pay; n > 0 {
		if time.Since(w.creditAt) > creditTTL {
			w.credit = 0
		}
		w.credit += n
		w.creditAt = time.Now()
	}
}

// event accounts for one keyspace event on obj's field hash and schedules a reconcile when
// no commit explains it. Events other than hset and hdel (del, expired, rename ...) are
// never caused by a commit.
func (f *Feed) event(obj, name string) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	w := f.watched[obj]
	if w == nil {
		return
	}
	if (name == "hset" || name == "hdel") && w.credit > 0 && time.Since(w.creditAt) <= creditTTL {
		w.credit--
		return
	}
	w.debt++
	f.scheduleLocked(obj, w)
}

// scheduleLocked runs the reconcile script for obj after ReconcileDelay if there is still
// debt then, unless a run is already pending. f.wmu must be held.
func (f *Feed) scheduleLocked(obj string, w *watch) {
	if w.pending {
		return
	}
	w.pending = true
	time.AfterFunc(f.cfg.ReconcileDelay, func() {
		f.wmu.Lock()
		w.pending = false
		run := w.debt > 0
		w.debt = 0
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
		w.credit, w.debt = 0, 1
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
