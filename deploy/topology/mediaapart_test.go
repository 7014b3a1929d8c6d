package topology

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
)

// mediaApartFile is the override that runs the media gateway role apart (its comment
// says how).
const mediaApartFile = "testdata/media-apart.yml"

// TestMediaApart runs docker-compose.yml with the roles apart (testdata/media-apart.yml:
// gw1 and gw2 serve the page and the DSM behind nginx, as1 and as2 run the AS adapter
// only, mgw1 and mgw2 the media gateway only) and bob recording what he receives, and
// loses a media gateway under a call. One stack serves the subtests, in order.
func TestMediaApart(t *testing.T) {
	t0 := time.Now()
	bobOverride, env := bobHears(t)
	apart, err := filepath.Abs(mediaApartFile)
	if err != nil {
		t.Fatal(err)
	}
	s := Up(t, Options{Overrides: []string{bobOverride, apart}, Env: env})
	t.Logf("stack up in %s", time.Since(t0).Round(time.Millisecond))
	lb := "http://" + s.Published(t, "lb", 8080)
	browser := startBrowser(t)
	var lost string
	t.Run("a call survives SIGKILL of its media gateway", func(t *testing.T) {
		lost = testMediaGatewayLost(t, s, browser, lb, "SIGKILL", func(mgw *Service) {
			if err := mgw.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("new calls go to the live media gateway", func(t *testing.T) {
		if lost == "" {
			t.Fatal("no media gateway was lost (the subtest before failed)")
		}
		testCallAfterMediaGatewayLost(t, s, browser, lb, lost)
	})
	t.Run("a restarted media gateway takes new calls again", func(t *testing.T) {
		if lost == "" {
			t.Fatal("no media gateway was lost (the subtest before failed)")
		}
		testMediaGatewayBack(t, s, browser, lb, lost)
	})
	// The media gateway's stop signal (SIGTERM, as `docker compose restart` sends)
	// ends its terminations with a shutdown event to their AS adapters, which move the
	// calls at once: a rolling restart of the media gateways.
	t.Run("a call survives a restart of its media gateway", func(t *testing.T) {
		stopped := testMediaGatewayLost(t, s, browser, lb, "SIGTERM", func(mgw *Service) {
			if err := mgw.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
		})
		t0 := time.Now()
		s.Restart(t, stopped) // waits for the stopping process to exit first
		t.Logf("%s exited and started again in %s", stopped, time.Since(t0).Round(time.Millisecond))
	})
	// The other half: the AS adapter holding a call is lost, its media gateway lives.
	t.Run("a call survives SIGKILL of its AS adapter", func(t *testing.T) { testAdapterLost(t, s, browser, lb) })
	t.Logf("TestMediaApart took %s", time.Since(t0).Round(time.Millisecond))
}

// The services of testdata/media-apart.yml that run the media gateway role, and those
// that run the AS adapter role (apart from the web and bridge roles of gw1 and gw2).
var (
	mediaGateways = []string{"mgw1", "mgw2"}
	adapters      = []string{"as1", "as2"}
)

// addrsOf maps the services' addresses to their names.
func addrsOf(s *Stack, names ...string) map[string]string {
	out := map[string]string{}
	for _, name := range names {
		out[s.services[name].Addr.String()] = name
	}
	return out
}

// testMediaGatewayLost calls bob from a page, hears his tone, stops the media gateway
// carrying the call's media (how), and checks that the call goes on through the other one: the
// AS adapter holding the call (it stays where it is) re-INVITEs bob in the same dialog
// with a termination on the other media gateway, the page reattaches to its media URL
// and plays bob's tone again, bob receives the page's tone from it (his recording), the
// player never shows failed, and the page's hang-up reaches bob from the same adapter.
// It returns the media gateway it stopped.
func testMediaGatewayLost(t *testing.T, s *Stack, browser context.Context, lb, what string, stop func(*Service)) string {
	sip := s.Service(t, "sip")
	rdb := redisClient(t, s)
	trace := traceSIP(t, sip)
	tab, _ := openPage(t, browser, lb+"/?processing=off")
	called := time.Now()
	// baresip prints where its audio comes from once per call: count this call's.
	receiving := strings.Count(sip.Output(), "receiving from ")
	dial(t, tab, bob)
	waitPage(t, tab, "call connected with media", `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`)
	heard := listen(t, tab, bobHz)
	player := within(t, tab, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))
	adapter := claimHolder(t, rdb, player)
	victim := mediaOwnerAmong(t, s, tab, mediaGateways...)
	survivor := mediaGateways[0]
	if victim == survivor {
		survivor = mediaGateways[1]
	}
	waitPage(t, tab, "a second of microphone audio sent", `window.dsmgw.player.status.stats.sent >= 50`)
	waitFor(t, "the page's audio at bob from "+victim, 15*time.Second, func() bool {
		out := sip.Output()
		return strings.Count(out, "receiving from ") > receiving &&
			strings.Contains(out[strings.LastIndex(out, "receiving from "):], "receiving from "+s.Service(t, victim).Addr.String()+":")
	})
	before := within(t, tab, 5*time.Second, "the call", chromedp.Evaluate[map[string]string](
		`({url: window.dsmgw.player.status.mgwURL, callID: window.dsmgw.player.obj.get(window.dsmgw.player.F.callID)})`))
	// Every state the page shows from now on is recorded (the call's, its media
	// gateway's as the DSM has it, and the page's own media session's).
	within(t, tab, 5*time.Second, "watch the player", chromedp.Evaluate[bool](`(() => {
		window.__states = [];
		window.dsmgw.player.onChange((s) => { window.__states.push(s.playerState + '/' + s.mgwState + '/' + s.media); });
		return true;
	})()`))
	t.Logf("call %s held by %s, media on %s; the page plays %.1f Hz at %.1f dBFS; %s of %s",
		before["callID"], adapter, victim, heard.Hz, heard.DB, what, victim)

	t0 := time.Now()
	stop(s.Service(t, victim))
	waitMediaMoved(t, tab, "the page's media on the surviving media gateway", before["url"])
	moved := time.Since(t0)
	if m := mediaOwnerAmong(t, s, tab, mediaGateways...); m != survivor {
		t.Fatalf("media moved to %s, want %s", m, survivor)
	}
	if h := claimHolder(t, rdb, player); h != adapter {
		t.Fatalf("claim held by %q after the media gateway's loss, want %s (the call stays on its AS adapter)", h, adapter)
	}
	within(t, tab, 5*time.Second, "reset the analyser", chromedp.Evaluate[bool](`(() => { window.__an = null; return true; })()`))
	heard = listen(t, tab, bobHz)
	t.Logf("%s of %s: the page's media on %s after %s, bob's %.1f Hz tone heard again after %s",
		what, victim, survivor, moved.Round(time.Millisecond), heard.Hz, time.Since(t0).Round(time.Millisecond))

	sent := within(t, tab, 5*time.Second, "packets sent", chromedp.Evaluate[int](`window.dsmgw.player.status.stats.sent`))
	waitPage(t, tab, "a second of microphone audio through the surviving media gateway", fmt.Sprintf(`window.dsmgw.player.status.stats.sent >= %d`, sent+50))
	checkPageNeverFailed(t, tab, what)
	gateways := addrsOf(s, adapters...)
	checkOnlyReinviteFrom(t, trace, "the re-INVITE moving the media", before["callID"], gateways, adapter, what)

	hangUpSeenByBob(t, tab, sip)
	relayed := waitTermination(t, s.Service(t, survivor), before["callID"])
	if relayed.WSToUDP < 50 || relayed.Drops["send_error"] > 0 {
		t.Fatalf("%s relayed %d packets of the page to bob (drops %v), want a second or more", survivor, relayed.WSToUDP, relayed.Drops)
	}
	t.Logf("%s relayed %d packets of the page to bob and %d of bob to the page", survivor, relayed.WSToUDP, relayed.UDPToWS)
	checkBobHears(t, bobHeardLast(t, s, called, min(relayed.WSToUDP, 50)), "through "+survivor)
	checkOnlyByeFrom(t, trace, "the BYE", before["callID"], gateways, adapter)
	checkOneDriver(t, trace, gateways)
	return victim
}

// testCallAfterMediaGatewayLost places new calls while lost is down, once both AS
// adapters' media gateway pools have found it lost: every call's media goes to the other
// one (a pool hands its live media gateways out in turn, so two calls in a row from one
// adapter would otherwise have used both).
func testCallAfterMediaGatewayLost(t *testing.T, s *Stack, browser context.Context, lb, lost string) {
	for _, gw := range adapters {
		waitFor(t, gw+" finding "+lost+" lost", 15*time.Second, func() bool {
			return poolLogged(s.Service(t, gw).Output(), "media gateway lost; moving its calls", lost, time.Time{})
		})
	}
	rdb := redisClient(t, s)
	for i := range 2 {
		on, by := callBobOnce(t, s, rdb, browser, lb)
		if on == lost {
			t.Fatalf("call %d (placed by %s): media on %s, which is down", i+1, by, lost)
		}
	}
}

// testMediaGatewayBack restarts the lost media gateway and places calls once both AS
// adapters' pools have seen it answer again: it takes new calls again. Three calls are
// enough to see it: one of the two adapters places two of them, one after the other,
// and its pool hands them to different media gateways.
func testMediaGatewayBack(t *testing.T, s *Stack, browser context.Context, lb, lost string) {
	restarted := time.Now()
	s.Restart(t, lost)
	for _, gw := range adapters {
		waitFor(t, gw+" finding "+lost+" back", 15*time.Second, func() bool {
			return poolLogged(s.Service(t, gw).Output(), "media gateway back", lost, restarted)
		})
	}
	rdb := redisClient(t, s)
	on := map[string]int{}
	for range 3 {
		mgw, _ := callBobOnce(t, s, rdb, browser, lb)
		on[mgw]++
	}
	if on[lost] == 0 {
		t.Fatalf("calls after %s restarted: media on %v, none on %s", lost, on, lost)
	}
}

// callBobOnce calls bob from a new page, hears his tone and hangs up; it returns the
// media gateway that carried the call's media and the AS adapter that placed it.
func callBobOnce(t *testing.T, s *Stack, rdb *redis.Client, browser context.Context, lb string) (mgw, by string) {
	t.Helper()
	tab, _ := openPage(t, browser, lb+"/?processing=off")
	dial(t, tab, bob)
	waitPage(t, tab, "call connected with media", `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`)
	heard := listen(t, tab, bobHz)
	player := within(t, tab, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))
	by = claimHolder(t, rdb, player)
	mgw = mediaOwnerAmong(t, s, tab, mediaGateways...)
	t.Logf("call placed by %s: media on %s, the page plays %.1f Hz", by, mgw, heard.Hz)
	hangUp(t, tab)
	return mgw, by
}

// poolLogged reports whether an AS adapter's output has a line of its media gateway pool
// with msg about the media gateway service mgw, at or after since.
func poolLogged(out, msg, mgw string, since time.Time) bool {
	for l := range strings.SplitSeq(out, "\n") {
		var e struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			MGW  string    `json:"mgw"`
		}
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == msg && e.MGW == "http://"+mgw+":8080" && !e.Time.Before(since) {
			return true
		}
	}
	return false
}

// testAdapterLost calls bob from a page, SIGKILLs the AS adapter holding the call (its
// media gateway lives on) and checks that the other adapter continues it: it takes the
// claim, re-INVITEs bob in the same dialog with a termination its own pool places, the
// page reattaches and hears bob again, bob hears the page (his recording), the player
// never shows failed, and the page's hang-up reaches bob from the new adapter. The
// killed adapter is restarted after.
func testAdapterLost(t *testing.T, s *Stack, browser context.Context, lb string) {
	sip := s.Service(t, "sip")
	rdb := redisClient(t, s)
	trace := traceSIP(t, sip)
	tab, _ := openPage(t, browser, lb+"/?processing=off")
	called := time.Now()
	dial(t, tab, bob)
	waitPage(t, tab, "call connected with media", `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`)
	heard := listen(t, tab, bobHz)
	player := within(t, tab, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))
	victim := claimHolder(t, rdb, player)
	survivor := adapters[0]
	if victim == survivor {
		survivor = adapters[1]
	}
	mgw := mediaOwnerAmong(t, s, tab, mediaGateways...)
	waitPage(t, tab, "a second of microphone audio sent", `window.dsmgw.player.status.stats.sent >= 50`)
	before := within(t, tab, 5*time.Second, "the call", chromedp.Evaluate[map[string]string](
		`({url: window.dsmgw.player.status.mgwURL, callID: window.dsmgw.player.obj.get(window.dsmgw.player.F.callID)})`))
	within(t, tab, 5*time.Second, "watch the player", chromedp.Evaluate[bool](`(() => {
		window.__states = [];
		window.dsmgw.player.onChange((s) => { window.__states.push(s.playerState + '/' + s.mgwState + '/' + s.media); });
		return true;
	})()`))
	t.Logf("call %s held by %s, media on %s; the page plays %.1f Hz; SIGKILL of %s", before["callID"], victim, mgw, heard.Hz, victim)

	t0 := time.Now()
	if err := s.Service(t, victim).Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitMediaMoved(t, tab, "the page's media on the survivor's termination", before["url"])
	moved := time.Since(t0)
	if h := claimHolder(t, rdb, player); h != survivor {
		t.Fatalf("claim held by %q after the kill, want %s", h, survivor)
	}
	now := mediaOwnerAmong(t, s, tab, mediaGateways...)
	within(t, tab, 5*time.Second, "reset the analyser", chromedp.Evaluate[bool](`(() => { window.__an = null; return true; })()`))
	heard = listen(t, tab, bobHz)
	t.Logf("SIGKILL of %s: the page's media on a termination of %s's on %s after %s (call lease %s), bob's %.1f Hz tone heard again after %s",
		victim, survivor, now, moved.Round(time.Millisecond), env(s.Project.Services[victim], "SIP_CALL_LEASE"), heard.Hz, time.Since(t0).Round(time.Millisecond))
	sent := within(t, tab, 5*time.Second, "packets sent", chromedp.Evaluate[int](`window.dsmgw.player.status.stats.sent`))
	waitPage(t, tab, "a second of microphone audio through the survivor", fmt.Sprintf(`window.dsmgw.player.status.stats.sent >= %d`, sent+50))
	checkPageNeverFailed(t, tab, "kill")
	gateways := addrsOf(s, adapters...)
	checkOnlyReinviteFrom(t, trace, "the survivor's re-INVITE", before["callID"], gateways, survivor, "kill")

	hangUpSeenByBob(t, tab, sip)
	relayed := waitTerminationOf(t, s.Service(t, now), before["callID"], survivor)
	if relayed.WSToUDP < 50 || relayed.Drops["send_error"] > 0 {
		t.Fatalf("%s relayed %d packets of the page to bob (drops %v), want a second or more", now, relayed.WSToUDP, relayed.Drops)
	}
	// The lost adapter's termination did not outlive the move: the survivor removed it
	// (its pool did not create it, so it asks every media gateway).
	waitTerminationOf(t, s.Service(t, mgw), before["callID"], victim)
	checkBobHears(t, bobHeardLast(t, s, called, min(relayed.WSToUDP, 50)), "through "+survivor+"'s termination on "+now)
	checkOnlyByeFrom(t, trace, "the survivor's BYE", before["callID"], gateways, survivor)
	checkOneDriver(t, trace, gateways)
	s.Restart(t, victim)
}
