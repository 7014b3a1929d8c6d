package asadapter

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// inviteCallIDs returns the distinct Call-IDs of the INVITEs sipp received.
func inviteCallIDs(t *testing.T, s *testpeer.Sipp) map[string]int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, block := range strings.Split(string(b), "-----------------------------------------------") {
		received, first := false, ""
		for _, l := range strings.Split(block, "\n") {
			l = strings.TrimSpace(l)
			switch {
			case strings.Contains(l, "message received"):
				received = true
			case received && first == "" && l != "":
				first = l
			}
			if v, ok := strings.CutPrefix(l, "Call-ID:"); ok && received && strings.HasPrefix(first, "INVITE ") {
				ids[strings.TrimSpace(v)]++
			}
		}
	}
	return ids
}

func TestTwoInstancesHandleEachPlayerOnce(t *testing.T) {
	t.Parallel()
	const n = 12
	e := newEnv(t)
	path, _ := filepath.Abs("testdata/answer.xml")
	s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, Transport: "u1",
		Args: []string{"-m", fmt.Sprint(n)}})
	i1 := e.adapter("gw1", nil)
	i2 := e.adapter("gw2", nil)
	var players []string
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("players/client%02d/audio", i)
		players = append(players, p)
		e.dial(p, sippTarget(s.Addr))
	}
	for _, p := range players {
		e.waitField(p, "mgw_state", "connected")
	}
	ids := inviteCallIDs(t, s)
	if len(ids) != n {
		t.Fatalf("sipp saw %d distinct INVITEs for %d players: %v", len(ids), n, ids)
	}
	for _, p := range players {
		if _, ok := ids[e.fields(p)["call_id"]]; !ok {
			t.Fatalf("%s: call_id not among the INVITEs sipp saw", p)
		}
		e.browser(p, store.Set("player_state", "disconnected"))
	}
	for _, p := range players {
		e.waitField(p, "mgw_state", "disconnected")
	}
	waitSipp(t, s)
	e.waitNoTerminations()
	t.Logf("calls per instance: gw1 %v, gw2 %v", counterValue(t, i1.a.met.attempts.WithLabelValues(string(DirOut))),
		counterValue(t, i2.a.met.attempts.WithLabelValues(string(DirOut))))
}
