package asadapter

import (
	"maps"
	"testing"

	"dsmgw/store"
)

// TestPlayerView checks which changes from the feed let examine skip reading the player:
// only those that leave every field it reads known.
func TestPlayerView(t *testing.T) {
	t.Parallel()
	schema, err := store.LoadSchema()
	if err != nil {
		t.Fatal(err)
	}
	a := &Adapter{f: fieldsOf(schema)}
	f := a.f
	dial := []store.Op{store.Expect(f.playerState, "disconnected"), store.Del(f.mgwState), store.Del(f.mgwURL),
		store.Del(f.conference), store.Set(f.service, "mmtel"), store.Set(f.encoding, "PCMU"),
		store.Set(f.remote, "sip:bob@example.com"), store.Set(f.playerState, "connecting")}
	for _, tc := range []struct {
		name string
		c    store.Change
		want map[string]string // nil: read the player
	}{
		{"the page's dial", store.Change{Kind: store.ChangeOp, Rev: 7, Ops: dial},
			map[string]string{f.service: "mmtel", f.encoding: "PCMU", f.remote: "sip:bob@example.com", f.playerState: "connecting"}},
		{"a field left out", store.Change{Kind: store.ChangeOp, Rev: 7, Ops: dial[2:]}, nil},
		{"a new object", store.Change{Kind: store.ChangeOp, Rev: 1, Ops: []store.Op{store.Set(f.remote, "bob"),
			store.Set(f.playerState, "connecting"), store.Set(f.dtmf, "1")}},
			map[string]string{f.remote: "bob", f.playerState: "connecting"}},
		{"set then deleted", store.Change{Kind: store.ChangeOp, Rev: 1, Ops: []store.Op{store.Set(f.remote, "bob"),
			store.Del(f.remote)}}, map[string]string{}},
		{"a resync", store.Change{Kind: store.ChangeResync, Rev: 1, Fields: map[string]string{f.playerState: "connecting"}}, nil},
	} {
		got := a.playerView(tc.c)
		if (got == nil) != (tc.want == nil) || !maps.Equal(got, tc.want) {
			t.Errorf("%s: view %v, want %v", tc.name, got, tc.want)
		}
	}
}
