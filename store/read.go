package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// Entry is one committed op as kept in the op log and sent on the feed.
type Entry struct {
	Rev    int64  `json:"rev"`
	Client string `json:"c"`
	Seq    int64  `json:"q"`
	Ops    []Op   `json:"ops"`
}

// Read is a consistent read of one object: either a snapshot (Fields non-nil) or, when
// asked for the ops since a revision the op log still covers, the Log of entries after it,
// oldest first.
type Read struct {
	Rev    int64
	Fields map[string]string
	Log    []Entry
}

// Snapshot returns the fields and revision of an object (rev 0 and no fields if it was
// never written).
func (s *Store) Snapshot(ctx context.Context, obj string) (Read, error) {
	return s.Since(ctx, obj, -1)
}

// Since returns the entries committed after revision since, or a snapshot when the op log
// no longer reaches back that far (or since is -1, or a resync happened in between, or since
// is ahead of the object, as after the object was removed). A write made outside the commit
// path is adopted first (except on index objects), so what it returns is what Redis holds.
func (s *Store) Since(ctx context.Context, obj string, since int64) (Read, error) {
	if err := ValidAddress(obj); err != nil {
		return Read{}, err
	}
	r, _, err := s.read(ctx, obj, since, !s.schema.IsIndex(obj))
	return r, err
}

// read runs the read script; check compares the fields with the commits' signature and
// adopts a difference. It reports whether it adopted one.
func (s *Store) read(ctx context.Context, obj string, since int64, check bool) (Read, bool, error) {
	k := keysFor(obj, s.cfg.Shards)
	chk := "0"
	if check {
		chk = "1"
	}
	res, err := s.readScript.Run(ctx, s.rdb, []string{k.fields, k.meta, k.log, k.feed}, since, obj, s.cfg.FeedLen, chk).Slice()
	if err != nil {
		return Read{}, false, fmt.Errorf("store: read %s since %d: %w", obj, since, err)
	}
	if len(res) < 3 {
		return Read{}, false, fmt.Errorf("store: read %s: short reply %v", obj, res)
	}
	rev, _ := res[0].(int64)
	adopted, _ := res[1].(int64)
	if adopted == 1 {
		s.log.Warn("adopted a write made outside the commit path", "obj", obj, "rev", rev)
	}
	r := Read{Rev: rev}
	if flat, ok := res[2].([]any); ok {
		r.Fields = make(map[string]string, len(flat)/2)
		for i := 0; i+1 < len(flat); i += 2 {
			f, _ := flat[i].(string)
			v, _ := flat[i+1].(string)
			r.Fields[f] = v
		}
		return r, adopted == 1, nil
	}
	r.Log = make([]Entry, len(res)-3)
	for i := 3; i < len(res); i++ {
		raw, _ := res[i].(string)
		var e Entry
		if err := json.Unmarshal([]byte(raw), &e); err != nil {
			return Read{}, false, fmt.Errorf("store: op log of %s: %w", obj, err)
		}
		r.Log[len(res)-1-i] = e // newest first in Redis, oldest first here
	}
	return r, adopted == 1, nil
}

// Reconcile adopts a write made outside the commit path: if the fields no longer match the
// signature kept by commits, the revision is bumped and a resync entry is published on the
// feed. It reports whether it adopted anything.
func (s *Store) Reconcile(ctx context.Context, obj string) (bool, error) {
	_, adopted, err := s.read(ctx, obj, -1, true)
	if err != nil {
		return false, fmt.Errorf("store: reconcile: %w", err)
	}
	return adopted, nil
}
