package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// Concurrent commits through pipelines keep every rule: each (client, seq) once, revisions
// dense, dedup answers, and a script flushed from Redis is loaded again.
func TestPipelinedCommits(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{Pipeline: 8, Pipelines: 2})
	ctx := context.Background()
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	const writers, each = 32, 25
	var wg sync.WaitGroup
	var dups atomic.Int64
	revs := make([][]int64, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := 1; s <= each; s++ {
				c := store.Commit{Obj: "users/shared", Client: fmt.Sprint("w", w), Seq: int64(s), Base: -1,
					Ops: []store.Op{store.Set(fmt.Sprint("f", w), fmt.Sprint(s))}}
				res, err := st.Commit(ctx, c)
				if err != nil {
					t.Errorf("commit: %v", err)
					return
				}
				revs[w] = append(revs[w], res.Rev)
				again, err := st.Commit(ctx, c) // a resend
				if err != nil || !again.Dup || again.Rev != res.Rev {
					t.Errorf("resend: %+v %v", again, err)
					return
				}
				dups.Add(1)
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, rs := range revs {
		for i, r := range rs {
			if seen[r] || (i > 0 && r <= rs[i-1]) {
				t.Fatalf("revision %d repeated or out of order", r)
			}
			seen[r] = true
		}
	}
	snap, _ := st.Snapshot(ctx, "users/shared")
	if snap.Rev != writers*each || len(seen) != writers*each || len(snap.Fields) != writers {
		t.Fatalf("rev %d, %d distinct revs, %d fields", snap.Rev, len(seen), len(snap.Fields))
	}
}

// BenchmarkCommitParallel compares pipelined commits against one round trip per commit
// (Pipeline 1, the baseline) in the same run, 64 concurrent writers on distinct objects.
func BenchmarkCommitParallel(b *testing.B) {
	r := testpeer.StartRedis(b, testpeer.RedisOptions{})
	var id atomic.Int64 // every writer of every round gets fresh objects
	for _, pl := range []int{1, 64} {
		b.Run(fmt.Sprintf("pipeline=%d", pl), func(b *testing.B) {
			rdb := r.Client(b)
			rdb.Options().PoolSize = 128
			st, err := store.New(store.Config{Pipeline: pl}, rdb, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(32) // 64 writers on 2 cores
			b.RunParallel(func(pb *testing.PB) {
				obj := fmt.Sprintf("players/b%d/audio", id.Add(1))
				seq := int64(0)
				for pb.Next() {
					seq++
					if _, err := st.Commit(context.Background(), store.Commit{Obj: obj, Client: "bench", Seq: seq, Base: -1,
						Ops: []store.Op{store.Set("player_state", fmt.Sprint(seq))}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
