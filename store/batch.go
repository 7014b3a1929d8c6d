package store

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// batcher sends concurrent commits to Redis in pipelines. Redis spends most of a small
// script's cost on reading and answering the request (a syscall each way per client);
// in a pipeline those costs are shared, so the same Redis core commits several times more
// ops per second. There is no background goroutine: the first caller that finds a free
// pipeline slot becomes a leader and sends everything queued, then keeps sending whatever
// queued meanwhile; other callers just wait for their reply. At low load a pipeline holds
// one commit and nothing is delayed.
type batcher struct {
	rdb    redis.UniversalClient
	script *redis.Script
	max    int // commits per pipeline
	slots  int // pipelines in flight at once

	mu      sync.Mutex // guards queue and leaders
	queue   []*pendingCommit
	leaders int
}

type pendingCommit struct {
	keys []string
	args []any
	res  []any
	err  error
	done chan struct{}
}

func newBatcher(rdb redis.UniversalClient, script *redis.Script, max, slots int) *batcher {
	return &batcher{rdb: rdb, script: script, max: max, slots: slots}
}

// run commits one script call through a pipeline and returns its reply.
func (b *batcher) run(ctx context.Context, keys []string, args ...any) ([]any, error) {
	p := &pendingCommit{keys: keys, args: args, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	lead := b.leaders < b.slots
	if lead {
		b.leaders++
	}
	b.mu.Unlock()
	if lead {
		b.lead()
	}
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		// The commit may still be applied; the caller's resend with the same seq learns
		// the outcome, as after any lost reply.
		return nil, ctx.Err()
	}
}

// lead sends queued commits until the queue is empty, then gives up its slot.
func (b *batcher) lead() {
	for {
		b.mu.Lock()
		n := min(len(b.queue), b.max)
		if n == 0 {
			b.leaders--
			b.mu.Unlock()
			return
		}
		batch := make([]*pendingCommit, n)
		copy(batch, b.queue)
		b.queue = b.queue[n:]
		if len(b.queue) == 0 {
			b.queue = nil // let the backing array go
		}
		b.mu.Unlock()
		b.send(batch)
	}
}

func (b *batcher) send(batch []*pendingCommit) {
	// A pipeline must not be cut short by one caller's context: the others wait on it.
	ctx := context.Background()
	cmds := make([]*redis.Cmd, len(batch))
	_, _ = b.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, p := range batch {
			cmds[i] = b.script.EvalSha(ctx, pipe, p.keys, p.args...)
		}
		return nil
	})
	for i, p := range batch {
		res, err := cmds[i].Slice()
		if err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			// First use on this server (or after SCRIPT FLUSH): Run loads the script.
			res, err = b.script.Run(ctx, b.rdb, p.keys, p.args...).Slice()
		}
		p.res, p.err = res, err
		close(p.done)
	}
}
