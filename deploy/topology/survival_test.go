package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
)

// testCallSurvives calls bob from a page, hears his tone, SIGKILLs the gateway instance
// that holds the call, and checks that the call goes on through the other one: the
// survivor re-INVITEs bob in the same dialog through the CSCF, the page's media
// reattaches to the survivor's media URL and plays bob's tone again, bob receives the
// page's audio from the survivor, the player never shows failed, and the page's hang-up
// reaches bob through the survivor. Both ends' tones are checked by pitch: bob's at the
// page (an analyser on what it plays), the page's at bob (his recording of the call,
// testdata/bob-hears.yml). The killed gateway is restarted after.
func testCallSurvives(t *testing.T, s *Stack, browser context.Context, lb string) {
	sip := s.Service(t, "sip")
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(s.Service(t, "redis").Addr.String(), "6379")})
	defer rdb.Close()
	trace := traceSIP(t, sip)
	tab, _ := openPage(t, browser, lb+"/?processing=off")
	called := time.Now()
	dial(t, tab, bob)
	waitPage(t, tab, "call connected with media", `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`)
	heard := listen(t, tab, bobHz)
	player := within(t, tab, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))
	owner := claimHolder(t, rdb, player)
	if m := mediaOwner(t, s, tab); m != owner {
		t.Fatalf("media on %s, claim on %s", m, owner)
	}
	survivor := "gw1"
	if owner == "gw1" {
		survivor = "gw2"
	}
	waitPage(t, tab, "a second of microphone audio sent", `window.dsmgw.player.status.stats.sent >= 50`)
	waitOutput(t, sip, "the page's audio at bob", "receiving from "+s.Service(t, owner).Addr.String()+":")
	before := within(t, tab, 5*time.Second, "the call", chromedp.Evaluate[map[string]string](
		`({url: window.dsmgw.player.status.mgwURL, callID: window.dsmgw.player.obj.get(window.dsmgw.player.F.callID)})`))
	// Every state the page shows from now on is recorded: a failed one fails the test.
	within(t, tab, 5*time.Second, "watch the player", chromedp.Evaluate[bool](`(() => {
		window.__states = [];
		window.dsmgw.player.onChange((s) => { window.__states.push(s.playerState + '/' + s.mgwState); });
		return true;
	})()`))
	t.Logf("call %s on %s, the page plays %.1f Hz at %.1f dBFS; killing %s", before["callID"], owner, heard.Hz, heard.DB, owner)

	t0 := time.Now()
	if err := s.Service(t, owner).Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitMediaMoved(t, tab, "the page's media on the survivor", before["url"])
	moved := time.Since(t0)
	if m := mediaOwner(t, s, tab); m != survivor {
		t.Fatalf("media moved to %s, want %s", m, survivor)
	}
	if h := claimHolder(t, rdb, player); h != survivor {
		t.Fatalf("claim held by %q after the kill, want %s", h, survivor)
	}
	// The tone again: the analyser restarts on the new media session's audio.
	within(t, tab, 5*time.Second, "reset the analyser", chromedp.Evaluate[bool](`(() => { window.__an = null; return true; })()`))
	heard = listen(t, tab, bobHz)
	heardAt := time.Since(t0)
	t.Logf("SIGKILL of %s: the page's media on %s after %s, bob's %.1f Hz tone heard again after %s",
		owner, survivor, moved.Round(time.Millisecond), heard.Hz, heardAt.Round(time.Millisecond))

	// A second of the page's audio through the survivor before the hang-up.
	sent := within(t, tab, 5*time.Second, "packets sent", chromedp.Evaluate[int](`window.dsmgw.player.status.stats.sent`))
	waitPage(t, tab, "a second of microphone audio through the survivor", fmt.Sprintf(`window.dsmgw.player.status.stats.sent >= %d`, sent+50))

	checkPageNeverFailed(t, tab, "kill")
	gateways := gatewayAddrs(s)
	checkOnlyReinviteFrom(t, trace, "the survivor's re-INVITE", before["callID"], gateways, survivor, "kill")

	hangUpSeenByBob(t, tab, sip)
	// bob heard the page through the survivor: its termination relayed the page's audio
	// to him (baresip prints where it receives from only once per call).
	relayed := waitTermination(t, s.Service(t, survivor), before["callID"])
	if relayed.WSToUDP < 50 || relayed.Drops["send_error"] > 0 {
		t.Fatalf("the survivor's termination relayed %d packets of the page to bob (drops %v), want a second or more", relayed.WSToUDP, relayed.Drops)
	}
	t.Logf("the survivor relayed %d packets of the page to bob and %d of bob to the page", relayed.WSToUDP, relayed.UDPToWS)
	// What bob received last came through the survivor: its relayed packets (up to a
	// second of them) end bob's recording of the call.
	checkBobHears(t, bobHeardLast(t, s, called, min(relayed.WSToUDP, 50)), "through the survivor")
	checkOnlyByeFrom(t, trace, "the survivor's BYE", before["callID"], gateways, survivor)
	checkOneDriver(t, trace, gateways)
	s.Restart(t, owner)
}

// reinviteFrom returns when each gateway first sent a re-INVITE (an INVITE with a To tag)
// for callID (by name).
func reinviteFrom(pkts []sipPacket, callID string, among map[string]string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, p := range pkts {
		if name, ok := among[p.Src]; ok && p.Method == "INVITE" && p.ToTag != "" && p.CallID == callID {
			if _, seen := out[name]; !seen {
				out[name] = p.At
			}
		}
	}
	return out
}

// closedTermination is what a gateway logs of a termination when it is closed.
type closedTermination struct {
	Msg      string         `json:"msg"`
	Instance string         `json:"instance"`
	CallID   string         `json:"call_id"`
	Owner    string         `json:"owner"` // the AS adapter instance that created it
	WSToUDP  int            `json:"ws_to_udp_rtp"`
	UDPToWS  int            `json:"udp_to_ws_rtp"`
	Drops    map[string]int `json:"drops"`
}

// waitTermination waits until gw logged the close of a termination of callID and returns
// its counters.
func waitTermination(t *testing.T, gw *Service, callID string) closedTermination {
	t.Helper()
	return waitTerminationOf(t, gw, callID, "")
}

// waitTerminationOf is waitTermination for the termination owner created (any owner's
// when owner is empty): a call moved by a takeover has had one of each on gw.
func waitTerminationOf(t *testing.T, gw *Service, callID, owner string) closedTermination {
	t.Helper()
	var out closedTermination
	waitFor(t, gw.Name+" closing the termination of "+callID+" by "+cmpOr(owner, "any owner"), 15*time.Second, func() bool {
		for _, l := range strings.Split(gw.Output(), "\n") {
			var c closedTermination
			if json.Unmarshal([]byte(l), &c) == nil && c.Msg == "termination closed" && c.CallID == callID && c.Instance == gw.Name &&
				(owner == "" || c.Owner == owner) {
				out = c
				return true
			}
		}
		return false
	})
	return out
}
