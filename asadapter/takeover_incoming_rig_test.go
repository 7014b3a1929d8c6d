package asadapter

import (
	"path/filepath"
	"testing"

	"dsmgw/internal/testpeer"
)

// incomingViaKamailio is the set-up of the tests of an incoming call taken over: user's
// page registered, gw1 and gw2 of domain gw.test (calls ring only users of our domains:
// the SIP edge), prepare run on gw1 before anything calls (nil: nothing), Kamailio with
// Record-Route in front of gw1 as the CSCF, and a sipp caller running testdata's
// scenario to user (echoing RTP when echo). It returns the instances, the caller and
// the page's player key.
func incomingViaKamailio(t *testing.T, e *env, user, scenario string, echo bool, prepare func(gw1 *instance)) (map[string]*instance, *testpeer.Sipp, string) {
	t.Helper()
	e.registerUser(user, user+"client")
	gw := func(c *Config) { c.Domain = "gw.test" }
	inst := map[string]*instance{"gw1": e.adapter("gw1", gw), "gw2": e.adapter("gw2", gw)}
	if prepare != nil {
		prepare(inst["gw1"])
	}
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ConfDomain: "gw.test", ConfServer: "sip:" + inst["gw1"].a.Addr("udp")})
	path, err := filepath.Abs(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, Remote: k.Addr, RTPEcho: echo,
		Args: []string{"-m", "1", "-s", user}})
	return inst, s, "players/" + user + "client/audio"
}
