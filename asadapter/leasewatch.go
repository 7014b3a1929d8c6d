package asadapter

import (
	"container/heap"
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The lease watcher: how a survivor learns, within milliseconds, that the claim of
// another instance's call expired. Every instance watches the calls other instances own
// (it hears of them from their commits on the change feed, and from the dialog records
// on each rescan): it reads the remaining time of each claim (PTTL) and reads it again
// when that time is up. A live owner renews its claim every quarter lease, so the second
// read finds it extended and the watch goes on; the owner of a lost call renews no more,
// and the read at the expiry finds no claim: the player is examined at once and the call
// taken over (takeover.go). One read per watched call per lease, pipelined with every
// other read due at the same moment, and no reliance on Redis's own expiry, which may
// delete an expired key (and emit its keyspace event) seconds late when many keys carry
// a TTL.

// watchCoalesce gathers the reads due within this much of each other into one pipeline:
// a takeover a few milliseconds later costs nothing next to the lease, and a thousand
// calls' reads go out together instead of one by one.
const watchCoalesce = 10 * time.Millisecond

// watchSlack is how long after a claim's announced expiry it is read again: Redis expires
// a key read at its expiry lazily on that read, so a millisecond suffices; two cover
// the rounding of PTTL.
const watchSlack = 2 * time.Millisecond

// watchBatch bounds one pipeline of reads.
const watchBatch = 1024

// leaseWatch holds the players whose claims are watched, with when each is read next.
type leaseWatch struct {
	mu   sync.Mutex // guards due and q
	due  map[string]time.Time
	q    watchQueue
	wake chan struct{} // an earlier read was added (cap 1)
}

func newLeaseWatch() *leaseWatch {
	return &leaseWatch{due: make(map[string]time.Time), wake: make(chan struct{}, 1)}
}

// watch reads player's claim at at (or earlier, if it is already due earlier).
func (w *leaseWatch) watch(player string, at time.Time) {
	w.mu.Lock()
	if cur, ok := w.due[player]; ok && !cur.After(at) {
		w.mu.Unlock()
		return
	}
	w.due[player] = at
	heap.Push(&w.q, watchEntry{player: player, at: at})
	first := w.q[0].player == player && w.q[0].at.Equal(at)
	w.mu.Unlock()
	if first {
		signal(w.wake)
	}
}

// next returns when the next read is due (zero: none).
func (w *leaseWatch) next() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.q) > 0 {
		e := w.q[0]
		if at, ok := w.due[e.player]; ok && at.Equal(e.at) {
			return e.at
		}
		heap.Pop(&w.q) // superseded by an earlier read, or dropped
	}
	return time.Time{}
}

// takeDue removes and returns the players due by until (at most watchBatch).
func (w *leaseWatch) takeDue(until time.Time) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for len(w.q) > 0 && len(out) < watchBatch && !w.q[0].at.After(until) {
		e := heap.Pop(&w.q).(watchEntry)
		if at, ok := w.due[e.player]; ok && at.Equal(e.at) {
			delete(w.due, e.player)
			out = append(out, e.player)
		}
	}
	return out
}

// size is how many players are watched.
func (w *leaseWatch) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.due)
}

// watchLeases reads the watched claims as they fall due until ctx ends.
func (a *Adapter) watchLeases(ctx context.Context) error {
	w := a.leases
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := w.next()
		wait := time.Hour
		if !next.IsZero() {
			wait = time.Until(next)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
			timer.Stop()
			continue
		case <-timer.C:
		}
		for {
			batch := w.takeDue(time.Now().Add(watchCoalesce))
			if len(batch) == 0 {
				break
			}
			a.readLeases(ctx, batch)
		}
	}
}

// readLeases reads the claims of players and acts on each: an expired claim has its
// player examined now (a takeover), a live one is read again when it can next expire.
func (a *Adapter) readLeases(ctx context.Context, players []string) {
	cmds := make([]*redis.DurationCmd, len(players))
	_, err := a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, pl := range players {
			cmds[i] = p.PTTL(ctx, a.keys.claim(pl))
		}
		return nil
	})
	now := time.Now()
	if err != nil && ctx.Err() == nil {
		a.log.Warn("read claims failed; reading them again", "claims", len(players), "err", err)
	}
	for i, pl := range players {
		if a.callFor(pl) != nil {
			continue // ours now: our own lease keeps it
		}
		ttl, err := cmds[i].Result()
		switch {
		case err != nil:
			a.leases.watch(pl, now.Add(a.renewEvery()))
		case ttl == -2: // no claim: its owner let it lapse, or ended the call
			a.kick(pl)
		case ttl < 0: // a claim without expiry is none of ours; look again later
			a.leases.watch(pl, now.Add(a.cfg.ClaimTTL))
		default:
			a.leases.watch(pl, now.Add(ttl+watchSlack))
		}
	}
}

// watchCommit watches the claim of a player another gateway instance just wrote to: it
// owns (or just ended) a call there.
func (a *Adapter) watchCommit(obj, client string) {
	if client == a.client || !strings.HasPrefix(client, "asadapter/") {
		return
	}
	if a.callFor(obj) == nil {
		a.leases.watch(obj, time.Now())
	}
}

// watchQueue is a min-heap of reads by time; entries superseded in due are skipped.
type watchQueue []watchEntry

type watchEntry struct {
	player string
	at     time.Time
}

func (q watchQueue) Len() int           { return len(q) }
func (q watchQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q watchQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *watchQueue) Push(x any)        { *q = append(*q, x.(watchEntry)) }
func (q *watchQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}
