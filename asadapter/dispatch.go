package asadapter

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"dsmgw/store"
)

// Wake-ups: the change feed is the main source (it carries every commit, in order, and a
// reader that reconnects loses nothing); keyspace notifications are a second, independent
// source, used only when the feed did not deliver a change for the same object shortly
// after; a rescan of the players index and of the live dialogs catches anything both
// missed. Wake-ups for objects with a local call go straight to that call; others go
// through a bounded, deduplicated queue to the workers.

// keyspaceGrace is how long after a keyspace event the feed may deliver the same change
// before the event counts as a wake-up of its own (100 ms: the feed entry is written by
// the same script as the hash, so it normally arrives within a millisecond or two).
const keyspaceGrace = 100 * time.Millisecond

// wakeFilter remembers when the feed last delivered a change per object.
type wakeFilter struct {
	mu   sync.Mutex // guards seen
	seen map[string]time.Time
}

func newWakeFilter() *wakeFilter { return &wakeFilter{seen: make(map[string]time.Time)} }

func (w *wakeFilter) fed(obj string, now time.Time) {
	w.mu.Lock()
	w.seen[obj] = now
	w.mu.Unlock()
}

func (w *wakeFilter) fedSince(obj string, t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.seen[obj]
	return ok && !s.Before(t)
}

// prune forgets entries older than keep, bounding the map to recent traffic.
func (w *wakeFilter) prune(keep time.Duration) {
	cut := time.Now().Add(-keep)
	w.mu.Lock()
	for k, t := range w.seen {
		if t.Before(cut) {
			delete(w.seen, k)
		}
	}
	w.mu.Unlock()
}

// onChange runs on a feed reader goroutine: it must not block.
func (a *Adapter) onChange(c store.Change) {
	if c.Kind == store.ChangeLost {
		a.kickAll()
		return
	}
	if a.identityChange(c) {
		return
	}
	if c.Obj == a.schema.Players.Index {
		if c.Client == a.client {
			return
		}
		// A player with a call here is left alone: what it asks of its call is in its own
		// object, whose changes wake the call (a wake-up from the index would only cost
		// the call a read of the player, in the middle of its INVITE).
		for _, o := range c.Ops {
			if o.Kind == store.OpSet && a.callFor(o.Field) == nil {
				a.kick(o.Field)
			}
		}
		for k := range c.Fields {
			if a.callFor(k) == nil {
				a.kick(k)
			}
		}
		return
	}
	if _, _, ok := a.schema.ParsePlayerAddress(c.Obj); !ok {
		return
	}
	a.wake.fed(c.Obj, time.Now())
	a.watchCommit(c.Obj, c.Client)
	if c.Client == a.client {
		return // our own write: nothing new for us
	}
	a.enqueue(c.Obj, a.queue, a.playerView(c))
}

// playerView returns the fields of a player that examine and startOutgoing read, as a
// change from the feed leaves them, so that a browser's request for a call is acted on
// without reading the player back: the change sets or deletes every one of them (the
// page's dial does), or it created the object (revision 1: what it does not set is
// absent). nil when the change leaves one unknown. A view that is no longer true when
// the call starts (the player changed meanwhile) is harmless: the start commit expects
// every field the call was built from (startOutgoing), so it does not land, and the
// change's own wake-up examines the player again.
func (a *Adapter) playerView(c store.Change) map[string]string {
	if c.Kind != store.ChangeOp {
		return nil
	}
	want := a.startFields()
	var known [nStartFields]bool
	fl := make(map[string]string, len(want))
	for _, o := range c.Ops {
		i := slices.Index(want[:], o.Field)
		if i < 0 {
			continue
		}
		switch {
		case o.Kind == store.OpSet && o.Value != nil:
			fl[o.Field] = *o.Value
		case o.Kind == store.OpDel:
			delete(fl, o.Field)
		default:
			continue
		}
		known[i] = true
	}
	if c.Rev != 1 && slices.Contains(known[:], false) {
		return nil
	}
	return fl
}

// nStartFields is how many fields examine and startOutgoing read from a player.
const nStartFields = 6

// startFields are the fields examine and startOutgoing read from a player (and the start
// commit expects).
func (a *Adapter) startFields() [nStartFields]string {
	return [nStartFields]string{a.f.playerState, a.f.mgwState, a.f.remote, a.f.conference, a.f.service, a.f.encoding}
}

// kick asks for a player object to be examined: a local call is poked at once, anything
// else is queued once.
func (a *Adapter) kick(player string) { a.enqueue(player, a.queue, nil) }

// kickSlow queues a rescan's wake-up on the low-priority queue, which workers serve only
// when no live wake-up waits: a rescan of thousands of idle players must not delay a
// browser that just asked for a call.
func (a *Adapter) kickSlow(player string) { a.enqueue(player, a.slow, nil) }

// enqueue queues player for examine with view (playerView; nil: examine reads the player).
// A player queued already keeps its place and takes the latest wake-up's view.
func (a *Adapter) enqueue(player string, q chan string, view map[string]string) {
	if c := a.callFor(player); c != nil {
		c.poke()
		return
	}
	a.pmu.Lock()
	if _, ok := a.pending[player]; ok {
		a.pending[player] = view
		a.pmu.Unlock()
		return
	}
	a.pending[player] = view
	a.pmu.Unlock()
	select {
	case q <- player:
	default:
		a.pmu.Lock()
		delete(a.pending, player)
		a.pmu.Unlock()
		a.met.wakeDrops.Inc()
	}
}

// kickAll schedules an immediate rescan (on a goroutine: it runs on a feed reader), bounded
// by Rescan and by Run's context.
func (a *Adapter) kickAll() {
	a.own.spawn(func() {
		ctx, cancel := context.WithTimeout(a.runContext(), a.cfg.Rescan)
		defer cancel()
		a.rescan(ctx)
		a.loadIdentities(ctx)
	})
}

func (a *Adapter) worker(ctx context.Context) error {
	for {
		var p string
		select {
		case p = <-a.queue:
		default:
			select {
			case <-ctx.Done():
				return nil
			case p = <-a.queue:
			case p = <-a.slow:
			}
		}
		a.pmu.Lock()
		view := a.pending[p]
		delete(a.pending, p)
		a.pmu.Unlock()
		a.examine(ctx, p, view)
	}
}

// examine decides what a player object needs from this instance: nothing, a new outgoing
// call, or ending a call whose owner died. view is what the wake-up's change says of the
// player (playerView); nil reads the player.
func (a *Adapter) examine(ctx context.Context, player string, view map[string]string) {
	if c := a.callFor(player); c != nil {
		c.poke()
		return
	}
	if _, _, ok := a.schema.ParsePlayerAddress(player); !ok || !a.takingNew() {
		return // a draining instance starts nothing and takes nothing over
	}
	fl := view
	if fl == nil {
		snap, err := a.st.Snapshot(ctx, player)
		if err != nil {
			a.met.dsmErrors.Inc()
			a.log.Warn("read player failed; the rescan retries", "player", player, "err", err)
			return
		}
		fl = snap.Fields
	}
	if a.wantsCall(fl) {
		a.startOutgoing(ctx, player, fl)
		return
	}
	if isLive(fl[a.f.mgwState]) || fl[a.f.playerState] == stateRinging {
		a.maybeTakeover(ctx, player)
	}
}

// wantsCall reports whether a player asks for an outgoing call: the browser wrote
// player_state connecting with a remote or conference, and no call is up or starting.
func (a *Adapter) wantsCall(fl map[string]string) bool {
	return fl[a.f.playerState] == stateConnecting && !isLive(fl[a.f.mgwState]) &&
		(fl[a.f.remote] != "" || fl[a.f.conference] != "")
}

func isLive(mgwState string) bool {
	return mgwState == stateConnecting || mgwState == stateConnected
}

func (a *Adapter) rescanLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Rescan)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			a.rescan(ctx)
			a.wake.prune(10 * keyspaceGrace)
		}
	}
}

// rescan re-examines every player of the index and every stored dialog.
func (a *Adapter) rescan(ctx context.Context) {
	idx, err := a.st.Snapshot(ctx, a.schema.Players.Index)
	if err != nil {
		a.met.dsmErrors.Inc()
		a.log.Warn("rescan: read players index failed", "err", err)
	} else {
		for p := range idx.Fields {
			if a.callFor(p) == nil {
				a.kickSlow(p)
			}
		}
	}
	members, err := a.st.Redis().SMembers(ctx, a.keys.calls()).Result()
	if err != nil {
		a.log.Warn("rescan: read dialogs failed", "err", err)
		return
	}
	now := time.Now()
	for _, p := range members {
		if a.callFor(p) == nil && a.takingNew() {
			a.leases.watch(p, now)
			a.maybeTakeover(ctx, p)
		}
	}
}

// watchDialogs watches the claims of every stored dialog not ours (at Run's start: calls
// of instances that were running before us).
func (a *Adapter) watchDialogs(ctx context.Context) {
	members, err := a.st.Redis().SMembers(ctx, a.keys.calls()).Result()
	if err != nil {
		a.log.Warn("read dialogs failed; the rescan reads them again", "err", err)
		return
	}
	now := time.Now()
	for _, p := range members {
		if a.callFor(p) == nil {
			a.leases.watch(p, now)
		}
	}
}

// keyspaceLoop turns keyspace events of player objects (through the feed's keyspace
// listener, which covers every master of a cluster) that the feed did not cover into
// wake-ups.
func (a *Adapter) keyspaceLoop(ctx context.Context) error {
	type event struct {
		obj string
		at  time.Time
	}
	// Bounded: under a flood of events the feed covers them anyway.
	events := make(chan event, 4096)
	prefix := a.schema.Players.Prefix
	cancel := a.feed.OnKeyspace(func(obj string, meta bool, _ string) {
		if meta || !strings.HasPrefix(obj, prefix) {
			return
		}
		select {
		case events <- event{obj: obj, at: time.Now()}:
		default:
		}
	})
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-events:
			if d := time.Until(ev.at.Add(keyspaceGrace)); d > 0 {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(d):
				}
			}
			if !a.wake.fedSince(ev.obj, ev.at.Add(-keyspaceGrace)) {
				a.kick(ev.obj)
			}
		}
	}
}
