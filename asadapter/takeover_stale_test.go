package asadapter

import (
	"encoding/json"
	"testing"

	"dsmgw/store"
)

// A survivor whose claim lapsed while it was getting to a takeover (its process not
// scheduled for a lease) finds that a later owner already wrote a higher generation into
// the player: it gives its stale claim up instead of writing its lower generation over the
// newer owner's (which once handed a call back to a stale owner, and ended it), and leaves
// the generation counter alone, so the call's generations keep growing.
func TestTakeoverGivesUpStaleClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	i := e.adapter("gw1", nil)
	p := "players/stella/audio"
	callID := "stale-claim@test"
	d := dialog{Player: p, Owner: "gw0", Dir: DirOut, State: DialogConfirmed, CallID: callID, LocalTag: "l1",
		RemoteTag: "r1", LocalURI: "sip:dsmgw@127.0.0.1", RemoteURI: "sip:far@127.0.0.1", Target: "sip:far@127.0.0.1:9"}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	rdb := e.st.Redis()
	genKey := i.a.keys.claimGen(p)
	// The newer owner holds generation 5 in the player; the counter says our claim is 3
	// (taken before that owner's, which has since lapsed too).
	if err := rdb.Set(e.ctx, genKey, 2, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(e.ctx, i.a.keys.dialog(p), b, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Commit(e.ctx, store.Commit{Obj: p, Client: "asadapter/gw0", Base: -1, Ops: []store.Op{
		store.Set("call_id", callID), store.Set("player_state", "connected"), store.Set("mgw_state", "connected"),
		store.Set("claim_gen", "5"),
	}}); err != nil {
		t.Fatal(err)
	}
	i.a.maybeTakeover(e.ctx, p)
	if g := e.fields(p)["claim_gen"]; g != "5" {
		t.Fatalf("player claim_gen %q after a stale takeover, want the newer owner's 5", g)
	}
	if n, err := rdb.Get(e.ctx, genKey).Int(); err != nil || n < 3 {
		t.Fatalf("generation counter %d (%v) after the stale claim was given up, want it kept at 3 or above", n, err)
	}
}
