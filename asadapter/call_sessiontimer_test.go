package asadapter

import (
	"strings"
	"testing"
	"time"
)

// seConfig lowers the minimum session interval so the scenarios' 2 s interval is taken
// as is: refreshes after 1 s, expiry after 1.3 s, instead of minutes.
func seConfig(c *Config) { c.MinSessionExpires = time.Second }

func TestSessionTimerWeRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "se_refresh.xml")
	e.adapter("gw1", seConfig)
	p := "players/se1/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	// sipp hangs up only after two refreshing re-INVITEs with the interval arrived.
	fl := e.waitField(p, "player_state", "disconnected")
	if fl["sip_reason"] != "remote hangup" {
		t.Fatalf("after the far end hung up: %v", fl)
	}
	waitSipp(t, s) // its regexp checks failed the call if a refresh lacked the interval
	e.checkGone(p)
}

func TestSessionTimerRefreshRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "se_refresh_fail.xml")
	e.adapter("gw1", seConfig)
	p := "players/se2/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" || fl["sip_status"] != "481" ||
		!strings.HasPrefix(fl["sip_reason"], "session refresh failed") || fl["mgw_url"] != "" {
		t.Fatalf("after a refused refresh: %v", fl)
	}
	waitSipp(t, s) // the scenario ends with our BYE
	e.checkGone(p)
}

func TestSessionTimerExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := sippScenario(t, "se_expire.xml")
	e.adapter("gw1", seConfig)
	p := "players/se3/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" || fl["sip_status"] != "408" || fl["sip_reason"] != "session expired" {
		t.Fatalf("after the session expired: %v", fl)
	}
	waitSipp(t, s) // the scenario ends with our BYE
	e.checkGone(p)
}

// checkGone waits until nothing of a player's call is left: dialog record, listing in the
// calls set, claim, termination. (The call's end writes the player first and cleans up
// after, so a test that saw the player's final state may be a moment early.)
func (e *env) checkGone(player string) {
	e.t.Helper()
	rdb := e.st.Redis()
	deadline := time.Now().Add(waitFor)
	for {
		n, err := rdb.Exists(e.ctx, "asadapter:dialog:"+player, "asadapter:claim:"+player).Result()
		in, err2 := rdb.SIsMember(e.ctx, "asadapter:calls", player).Result()
		if err == nil && err2 == nil && n == 0 && !in {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("call of %s not cleaned up: %d of dialog and claim keys left, listed %v (%v %v)",
				player, n, in, err, err2)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.waitNoTerminations()
}
