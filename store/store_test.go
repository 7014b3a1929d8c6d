package store_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"

	"github.com/redis/go-redis/v9"
)

func newStore(t *testing.T, rdb redis.UniversalClient, cfg store.Config) *store.Store {
	t.Helper()
	st, err := store.New(cfg, rdb, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func commit(t *testing.T, st *store.Store, c store.Commit) store.Committed {
	t.Helper()
	res, err := st.Commit(context.Background(), c)
	if err != nil {
		t.Fatalf("commit %+v: %v", c, err)
	}
	return res
}

func TestCommitRules(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	st := newStore(t, r.Client(t), store.Config{MaxFields: 4})
	ctx := context.Background()
	obj := "players/k1/audio"

	c1 := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 1, Base: 0,
		Ops: []store.Op{store.ExpectAbsent("player_state"), store.Set("player_state", "connecting"), store.Set("remote", "sip:bob@x")}})
	if c1.Rev != 1 || c1.Dup || c1.ID == "" {
		t.Fatalf("first commit: %+v", c1)
	}
	// A resend of the same seq is acknowledged with the first revision and writes nothing.
	dup := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 1, Base: 0, Ops: []store.Op{store.Set("remote", "other")}})
	if !dup.Dup || dup.Rev != 1 {
		t.Fatalf("resend: %+v", dup)
	}
	// Expect failure names the field and what it holds; nothing is written.
	_, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k2", Seq: 1, Base: 1,
		Ops: []store.Op{store.Expect("player_state", "connected"), store.Set("player_state", "disconnected")}})
	var ee *store.ExpectError
	if !errors.As(err, &ee) || !errors.Is(err, store.ErrExpectFailed) || ee.Field != "player_state" || ee.Have == nil || *ee.Have != "connecting" {
		t.Fatalf("expect: %v", err)
	}
	// An expect sees earlier elements of the same op.
	c2 := commit(t, st, store.Commit{Obj: obj, Client: "k2", Seq: 2, Base: 1,
		Ops: []store.Op{store.Set("mgw_state", "connecting"), store.Expect("mgw_state", "connecting"), store.Del("remote")}})
	if c2.Rev != 2 {
		t.Fatalf("second commit rev %d", c2.Rev)
	}
	if _, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k2", Seq: 1, Base: 2, Ops: []store.Op{store.Set("a", "b")}}); !errors.Is(err, store.ErrStale) {
		t.Fatalf("stale seq: %v", err)
	}
	if _, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k2", Seq: 3, Base: 9, Ops: []store.Op{store.Set("a", "b")}}); !errors.Is(err, store.ErrBaseAhead) {
		t.Fatalf("base ahead: %v", err)
	}
	if _, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k2", Seq: 3, Base: -1,
		Ops: []store.Op{store.Set("a", "1"), store.Set("b", "1"), store.Set("c", "1")}}); !errors.Is(err, store.ErrTooManyFields) {
		t.Fatalf("too many fields: %v", err)
	}
	// The index objects are exempt from the field limit.
	for i, f := range []string{"players/a/audio", "players/b/audio", "players/c/audio", "players/d/audio", "players/e/audio"} {
		commit(t, st, store.Commit{Obj: "players", Client: "x", Seq: int64(i + 1), Base: -1, Ops: []store.Op{store.Set(f, "audio")}})
	}

	snap, err := st.Snapshot(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"player_state": "connecting", "mgw_state": "connecting"}
	if snap.Rev != 2 || !maps.Equal(snap.Fields, want) {
		t.Fatalf("snapshot %+v", snap)
	}
	since, err := st.Since(ctx, obj, 0)
	if err != nil {
		t.Fatal(err)
	}
	if since.Fields != nil || len(since.Log) != 2 || since.Log[0].Rev != 1 || since.Log[1].Rev != 2 || since.Log[1].Client != "k2" || since.Log[1].Seq != 2 {
		t.Fatalf("since 0: %+v", since)
	}
	for _, e := range since.Log {
		for _, o := range e.Ops {
			if o.Kind == store.OpExpect {
				t.Fatalf("expect logged: %+v", e)
			}
		}
	}
	upToDate, _ := st.Since(ctx, obj, 2)
	if upToDate.Fields != nil || len(upToDate.Log) != 0 || upToDate.Rev != 2 {
		t.Fatalf("since current: %+v", upToDate)
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	long := string(make([]byte, 5000))
	cases := map[string]store.Commit{
		"bad address":    {Obj: "players//x", Base: -1, Ops: []store.Op{store.Set("a", "b")}},
		"address chars":  {Obj: "players/a b", Base: -1, Ops: []store.Op{store.Set("a", "b")}},
		"empty op":       {Obj: "o", Base: -1},
		"empty field":    {Obj: "o", Base: -1, Ops: []store.Op{store.Set("", "b")}},
		"value too long": {Obj: "o", Base: -1, Ops: []store.Op{store.Set("a", long)}},
		"set no value":   {Obj: "o", Base: -1, Ops: []store.Op{{Kind: store.OpSet, Field: "a"}}},
		"unknown kind":   {Obj: "o", Base: -1, Ops: []store.Op{{Kind: "incr", Field: "a"}}},
		"too many ops":   {Obj: "o", Base: -1, Ops: make([]store.Op, 33)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := st.Commit(context.Background(), c); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if n, _ := rdb.DBSize(context.Background()).Result(); n != 0 {
		t.Fatalf("%d keys written", n)
	}
}

func TestOplogCapFallsBackToSnapshot(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	st := newStore(t, r.Client(t), store.Config{OplogLen: 4})
	// The log is trimmed every 16th commit, so it holds between 4 and 19 entries.
	for i := 1; i <= 40; i++ {
		commit(t, st, store.Commit{Obj: "users/ann", Client: "svc", Seq: int64(i), Base: -1, Ops: []store.Op{store.Set("n", string(rune('a'+i)))}})
	}
	ctx := context.Background()
	got, _ := st.Since(ctx, "users/ann", 36)
	if got.Fields != nil || len(got.Log) != 4 || got.Log[0].Rev != 37 {
		t.Fatalf("since 36: %+v", got)
	}
	got, _ = st.Since(ctx, "users/ann", 5)
	if got.Fields == nil || got.Rev != 40 || got.Fields["n"] != string(rune('a'+40)) {
		t.Fatalf("since 5 should be a snapshot: %+v", got)
	}
}
