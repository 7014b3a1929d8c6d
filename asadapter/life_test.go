package asadapter

import (
	"testing"
	"time"

	"dsmgw/store"
)

// TestGonePageEndsCall: the page of a player in a call is gone for good (its client key
// absent for the grace period): the janitor removes the player object, and the adapter
// ends the call (BYE to the far end, termination deleted, claim and dialog record
// dropped) without writing anything that would bring the object back.
func TestGonePageEndsCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "answer.xml")
	gw := e.adapter("gw1", nil)
	p := "players/gone1/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")

	j, err := store.NewJanitor(store.JanitorConfig{Grace: time.Minute}, e.st, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	// No bridge recorded the page's presence here; a sweep a grace period after the last
	// write finds the key gone.
	st, err := j.Sweep(e.ctx, time.Now().Add(2*time.Minute))
	if err != nil || st.Removed != 1 {
		t.Fatalf("sweep: %+v %v", st, err)
	}
	waitSipp(t, s) // the far end got its BYE
	e.waitNoTerminations()
	deadline := time.Now().Add(waitFor)
	for {
		holder, err := gw.a.claimHolder(e.ctx, p)
		n, _ := e.st.Redis().Exists(e.ctx, gw.a.keys.dialog(p)).Result()
		if err == nil && holder == "" && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim %q (%v), dialog records %d left after the call ended", holder, err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r, _ := e.st.Snapshot(e.ctx, p); r.Rev != 0 || len(r.Fields) != 0 {
		t.Fatalf("the removed player came back: %+v", r)
	}
}
