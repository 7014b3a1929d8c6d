package store_test

import (
	"context"
	"errors"
	"hash/crc32"
	"strconv"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// TestLargeSeqs: seqs up to 2^53-1 (what every client can represent exactly) commit and
// deduplicate; the Lua script once stored 10^14 as "1e+14" and failed on the next op.
func TestLargeSeqs(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	st := newStore(t, r.Client(t), store.Config{})
	ctx := context.Background()
	obj := "players/k1/audio"
	for i, seq := range []int64{1e14, 1e14 + 1, 1e15 + 7, store.MaxSafeInt - 1, store.MaxSafeInt} {
		res := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: seq, Base: -1, Ops: []store.Op{store.Set("n", strconv.FormatInt(seq, 10))}})
		if res.Rev != int64(i+1) || res.Dup {
			t.Fatalf("seq %d: %+v", seq, res)
		}
		dup := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: seq, Base: -1, Ops: []store.Op{store.Set("n", "again")}})
		if !dup.Dup || dup.Rev != res.Rev {
			t.Fatalf("resend of seq %d: %+v", seq, dup)
		}
	}
	rd, err := st.Since(ctx, obj, 0)
	if err != nil || len(rd.Log) != 5 || rd.Log[4].Seq != store.MaxSafeInt {
		t.Fatalf("op log: %+v %v", rd, err)
	}
	for name, c := range map[string]store.Commit{
		"seq 2^53":      {Obj: obj, Client: "k1", Seq: store.MaxSafeInt + 1, Base: -1},
		"negative seq":  {Obj: obj, Client: "k1", Seq: -1, Base: -1},
		"base 2^53":     {Obj: obj, Client: "k1", Seq: 1, Base: store.MaxSafeInt + 1},
		"base below -1": {Obj: obj, Client: "k1", Seq: 1, Base: -2},
		"client space":  {Obj: obj, Client: "k 1", Seq: 1, Base: -1},
	} {
		c.Ops = []store.Op{store.Set("n", "x")}
		if _, err := st.Commit(ctx, c); !errors.Is(err, store.ErrBadOp) {
			t.Errorf("%s: %v, want ErrBadOp", name, err)
		}
	}
}

// TestPoisonedDedupRecord: a dedup record written by the old script ("1e+14 1") no longer
// makes every later commit of that writer fail.
func TestPoisonedDedupRecord(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	ctx := context.Background()
	obj := "shared/poison"
	commit(t, st, store.Commit{Obj: obj, Client: "svc", Seq: 1, Base: -1, Ops: []store.Op{store.Set("a", "1")}})
	if err := rdb.HSet(ctx, keyOf(obj, "m", st.Config().Shards), "q:k", "1e+14 1").Err(); err != nil {
		t.Fatal(err)
	}
	dup := commit(t, st, store.Commit{Obj: obj, Client: "k", Seq: 1e14, Base: -1, Ops: []store.Op{store.Set("a", "2")}})
	if !dup.Dup || dup.Rev != 1 {
		t.Fatalf("resend against the old record: %+v", dup)
	}
	res := commit(t, st, store.Commit{Obj: obj, Client: "k", Seq: 1e14 + 1, Base: -1, Ops: []store.Op{store.Set("a", "3")}})
	if res.Dup || res.Rev != 2 {
		t.Fatalf("next op after the old record: %+v", res)
	}
	// A record that is not even a number pair is ignored rather than failing forever.
	if err := rdb.HSet(ctx, keyOf(obj, "m", st.Config().Shards), "q:j", "garbage").Err(); err != nil {
		t.Fatal(err)
	}
	commit(t, st, store.Commit{Obj: obj, Client: "j", Seq: 5, Base: -1, Ops: []store.Op{store.Set("a", "4")}})
}

// TestScriptFailureIsNotUnavailable: when the commit script fails inside Redis (here on a
// meta hash broken by hand), the error says so and is not taken for a lost connection,
// which would make a client resend forever.
func TestScriptFailureIsNotUnavailable(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	ctx := context.Background()
	obj := "shared/broken"
	if err := rdb.HSet(ctx, keyOf(obj, "m", st.Config().Shards), "rev", "not a number").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k", Seq: 1, Base: -1, Ops: []store.Op{store.Set("a", "1")}})
	if !errors.Is(err, store.ErrScript) {
		t.Fatalf("got %v, want ErrScript", err)
	}
}

// TestSeqReuse: within an epoch (one page load) seqs deduplicate as always; an op of a new
// epoch whose seq is not above the writer's last one is refused with that last seq, so a
// reloaded page renumbers instead of having its write taken for a resend of an older op.
func TestSeqReuse(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	st := newStore(t, r.Client(t), store.Config{})
	ctx := context.Background()
	obj := "players/k1/audio"
	commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 1, Base: -1, Epoch: "page-1", Ops: []store.Op{store.Set("a", "1")}})
	commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 2, Base: -1, Epoch: "page-1", Ops: []store.Op{store.Set("a", "2")}})
	// The same epoch's resend is a duplicate.
	if dup := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 2, Base: -1, Epoch: "page-1", Ops: []store.Op{store.Set("a", "x")}}); !dup.Dup || dup.Rev != 2 {
		t.Fatalf("resend: %+v", dup)
	}
	// The reloaded page numbers from 1 again, and again after a lost answer: refused both
	// times with the last seq, nothing written.
	for i := 0; i < 2; i++ {
		_, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k1", Seq: 1, Base: -1, Epoch: "page-2", Ops: []store.Op{store.Set("a", "3")}})
		var re *store.SeqReusedError
		if !errors.As(err, &re) || !errors.Is(err, store.ErrSeqReused) || re.Last != 2 {
			t.Fatalf("reused seq: %v", err)
		}
	}
	res := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 3, Base: -1, Epoch: "page-2", Ops: []store.Op{store.Set("a", "3")}})
	if res.Rev != 3 || res.Dup {
		t.Fatalf("renumbered: %+v", res)
	}
	// Its own resend is now the duplicate; the old page's epoch is refused.
	if dup := commit(t, st, store.Commit{Obj: obj, Client: "k1", Seq: 3, Base: -1, Epoch: "page-2", Ops: []store.Op{store.Set("a", "y")}}); !dup.Dup || dup.Rev != 3 {
		t.Fatalf("resend in the new epoch: %+v", dup)
	}
	if _, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k1", Seq: 3, Base: -1, Epoch: "page-1", Ops: []store.Op{store.Set("a", "z")}}); !errors.Is(err, store.ErrSeqReused) {
		t.Fatalf("old epoch: %v", err)
	}
	if rd, _ := st.Snapshot(ctx, obj); rd.Fields["a"] != "3" || rd.Rev != 3 {
		t.Fatalf("object: %+v", rd)
	}
	if _, err := st.Commit(ctx, store.Commit{Obj: obj, Client: "k1", Seq: 9, Base: -1, Epoch: "a b", Ops: []store.Op{store.Set("a", "z")}}); !errors.Is(err, store.ErrBadOp) {
		t.Fatalf("bad epoch: %v", err)
	}
}

// TestStringsAreValidUTF8: strings that JSON could not carry unchanged (invalid UTF-8,
// UTF-8-encoded surrogates) are refused before anything is written; every valid string,
// NUL and 4-byte sequences included, is stored byte for byte.
func TestStringsAreValidUTF8(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	ctx := context.Background()
	for name, ops := range map[string][]store.Op{
		"invalid value":      {store.Set("a", "Bj\xf0\x9f")},
		"invalid field":      {store.Set("\xff", "x")},
		"encoded surrogate":  {store.Set("a", "\xed\xa0\xbd")},
		"expect invalid":     {store.Expect("a", "\xc3")},
		"del invalid field":  {store.Del("a\x80")},
		"overlong encoding":  {store.Set("a", "\xc0\xaf")},
		"invalid past limit": {store.Set("a", "ok"), store.Set("b", "\xfe")},
	} {
		if _, err := st.Commit(ctx, store.Commit{Obj: "shared/u", Base: -1, Ops: ops}); !errors.Is(err, store.ErrBadOp) {
			t.Errorf("%s: %v, want ErrBadOp", name, err)
		}
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("%d keys written by refused ops", n)
	}
	good := map[string]string{"emoji": "Bj😀rk", "combining": "e\u0301", "nul": "a\x00b", "4-byte": "\U0001F600\U00010348", "cjk": "漢字"}
	var ops []store.Op
	for f, v := range good {
		ops = append(ops, store.Set(f+"\u00e9", v))
	}
	commit(t, st, store.Commit{Obj: "shared/u", Base: -1, Ops: ops})
	rd, err := st.Snapshot(ctx, "shared/u")
	if err != nil {
		t.Fatal(err)
	}
	for f, v := range good {
		if rd.Fields[f+"\u00e9"] != v {
			t.Errorf("%s: stored %q, want %q", f, rd.Fields[f+"\u00e9"], v)
		}
	}
	log, _ := st.Since(ctx, "shared/u", 0)
	for _, o := range log.Log[0].Ops {
		if good[o.Field[:len(o.Field)-2]] != *o.Value {
			t.Errorf("op log holds %q for %q", *o.Value, o.Field)
		}
	}
}

// TestPlayersIndexSchema: the players index holds one field per player address with the
// media kind as value; anything else is refused, and "." and ".." segments nowhere pass.
func TestPlayersIndexSchema(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	rdb := r.Client(t)
	st := newStore(t, rdb, store.Config{})
	ctx := context.Background()
	for name, c := range map[string]store.Commit{
		"dot-dot field":   {Obj: "players", Ops: []store.Op{store.Set("players/A/../B/audio", "audio")}},
		"dot field":       {Obj: "players", Ops: []store.Op{store.Set("players/./audio", "audio")}},
		"not a player":    {Obj: "players", Ops: []store.Op{store.Set("users/bob", "audio")}},
		"unknown media":   {Obj: "players", Ops: []store.Op{store.Set("players/k/smell", "smell")}},
		"value not media": {Obj: "players", Ops: []store.Op{store.Set("players/k/audio", "loud")}},
		"value mismatch":  {Obj: "players", Ops: []store.Op{store.Set("players/k/audio", "video")}},
		"deeper field":    {Obj: "players", Ops: []store.Op{store.Set("players/k/audio/x", "audio")}},
		"dot-dot address": {Obj: "players/k/../j/audio", Ops: []store.Op{store.Set("a", "b")}},
		"dot address":     {Obj: "users/./x", Ops: []store.Op{store.Set("a", "b")}},
		"player kind":     {Obj: "players/k/x1", Ops: []store.Op{store.Set("a", "b")}},
		"players/k":       {Obj: "players/k", Ops: []store.Op{store.Set("a", "b")}},
	} {
		c.Base = -1
		if _, err := st.Commit(ctx, c); !errors.Is(err, store.ErrBadOp) && !errors.Is(err, store.ErrBadAddress) {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
	if n, _ := rdb.DBSize(ctx).Result(); n != 0 {
		t.Fatalf("%d keys written by refused ops", n)
	}
	commit(t, st, store.Commit{Obj: "players", Client: "k", Seq: 1, Base: -1,
		Ops: []store.Op{store.Set("players/k/audio", "audio"), store.Set("players/k/video", "video"), store.Del("players/k/video")}})
	// A key's private objects lie deeper (load tests keep theirs there).
	commit(t, st, store.Commit{Obj: "players/k/bench/p1", Client: "k", Seq: 1, Base: -1, Ops: []store.Op{store.Set("a", "b")}})
}

// keyOf names a Redis key of obj as the store lays them out (kind f, m or l).
func keyOf(obj, kind string, shards int) string {
	n := crc32.ChecksumIEEE([]byte(obj)) % uint32(shards)
	return "dsm:{" + strconv.FormatUint(uint64(n), 10) + "}:" + kind + ":" + obj
}
