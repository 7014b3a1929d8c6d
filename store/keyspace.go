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
					f.schedule(obj)
				}
			}
		}()
	}
	select {
	case err = <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// schedule runs the reconcile script for obj after ReconcileDelay, unless one is pending.
func (f *Feed) schedule(obj string) {
	f.wmu.Lock()
	_, watched := f.watched[obj]
	_, pending := f.pending[obj]
	if !watched || pending {
		f.wmu.Unlock()
		return
	}
	f.pending[obj] = struct{}{}
	f.wmu.Unlock()
	time.AfterFunc(f.cfg.ReconcileDelay, func() {
		f.wmu.Lock()
		delete(f.pending, obj)
		f.wmu.Unlock()
		ctxp := f.runCtx.Load()
		if ctxp == nil || (*ctxp).Err() != nil {
			return
		}
		ctx, cancel := context.WithTimeout(*ctxp, 5*time.Second)
		defer cancel()
		if _, err := f.st.Reconcile(ctx, obj); err != nil {
			f.log.Warn("reconcile failed", "obj", obj, "err", err)
		}
	})
}
