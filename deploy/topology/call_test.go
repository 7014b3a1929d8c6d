package topology

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter"
)

// bob is the demo phone of the sip service: baresip, answering with a 440 Hz tone.
const (
	bob   = "sip:bob@sip.dsmgw.test"
	bobHz = 440
)

// claimKey is the AS adapter's claim on a player (asadapter's default KeyPrefix and
// claim key): the test holds it to choose which instance takes a call.
func claimKey(player string) string { return "asadapter:claim:" + player }

// waitOutput waits until a service printed want.
func waitOutput(t *testing.T, sv *Service, what, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(sv.Output(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s never printed %q; it printed:\n%s", what, sv.Name, want, sv.tail(3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// dial calls uri from the page as a user does: type it, press Call.
func dial(t *testing.T, tab context.Context, uri string) {
	t.Helper()
	within(t, tab, 5*time.Second, "dial "+uri, chromedp.Steps(
		chromedp.SetValue(chromedp.CSS("#remote"), uri),
		chromedp.Click(chromedp.CSS("#call")),
	))
}

// mediaOwner returns the gateway whose published port the page's media URL names.
func mediaOwner(t *testing.T, s *Stack, tab context.Context) string {
	t.Helper()
	return mediaOwnerAmong(t, s, tab, "gw1", "gw2")
}

// mediaOwnerAmong returns which of the services running the media gateway role the
// page's media URL names (by its published port).
func mediaOwnerAmong(t *testing.T, s *Stack, tab context.Context, mgws ...string) string {
	t.Helper()
	url := within(t, tab, 5*time.Second, "media URL", chromedp.Evaluate[string](`window.dsmgw.player.status.mgwURL`))
	for _, gw := range mgws {
		if strings.HasPrefix(url, "ws://"+s.Published(t, gw, 8080)+"/") {
			return gw
		}
	}
	t.Fatalf("media URL %q names no gateway's published port", url)
	return ""
}

// hangUp presses Hang up and waits until the call and its media ended in the page.
func hangUp(t *testing.T, tab context.Context) {
	t.Helper()
	click(t, tab, "#hangup")
	waitPage(t, tab, "hung up", `window.dsmgw.player.status.playerState === 'disconnected' && window.dsmgw.player.status.media === 'idle'`)
}

// testCallBob calls bob from a page loaded through the load balancer, hears his tone,
// sends DTMF and hangs up; baresip's output shows the digits and the end of the call.
func testCallBob(t *testing.T, s *Stack, browser context.Context, lb string) {
	sip := s.Service(t, "sip")
	tab, inst := openPage(t, browser, lb+"/?processing=off")
	dial(t, tab, bob)
	waitPage(t, tab, "call connected with media", `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`)
	heard := listen(t, tab, bobHz)
	owner := mediaOwner(t, s, tab)
	t.Logf("WebSocket on %s, media from %s; the page plays %.1f Hz at %.1f dBFS", inst, owner, heard.Hz, heard.DB)
	// The microphone's audio reaches bob from the gateway's address. The digits come
	// after it, as after a user's first words: a digit sent before the page's first
	// RTP packet goes out on an SSRC of the gateway's, and the page's audio then
	// switches SSRC and sequence numbers under baresip, which drops the rest of the
	// stream as late packets (a media gateway defect; the report of this test's change
	// describes it).
	waitPage(t, tab, "a second of microphone audio sent", `window.dsmgw.player.status.stats.sent >= 50`)
	waitOutput(t, sip, "the page's audio at bob", "receiving from "+s.Service(t, owner).Addr.String()+":")
	for _, d := range []string{"1", "5", "#"} {
		within(t, tab, 20*time.Second, "press "+d, chromedp.Click(`//div[@id='pad']/button[normalize-space(.)='`+d+`']`))
		waitOutput(t, sip, "DTMF "+d+" at bob", "received event: '"+d+"' (end=1)")
	}
	hangUp(t, tab)
	waitOutput(t, sip, "bob's side of the hang-up", "Call with sip:dsmgw@sip.dsmgw.test terminated")
}

// testMediaPlacement makes a page whose DSM WebSocket is on wsOn start a call that the
// instance claimBy takes, and checks that the page gets its audio from claimBy: the media
// URL names the instance holding the termination, not the load balancer or wsOn.
//
// The placement is forced, not hoped for: the test holds the call's claim while the page
// dials (so neither instance can take it), freezes wsOn (SIGSTOP), releases the claim and
// waits for claimBy's rescan to take it, then thaws wsOn, which finds the call claimed.
func testMediaPlacement(t *testing.T, s *Stack, browser context.Context, lb, wsOn, claimBy string) {
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(s.Service(t, "redis").Addr.String(), "6379")})
	defer rdb.Close()
	ctx := context.Background()
	tab := onInstance(t, browser, lb+"/?processing=off", wsOn)
	player := within(t, tab, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))
	key := claimKey(player)
	if ok, err := rdb.SetNX(ctx, key, "topology-test", time.Minute).Result(); err != nil || !ok {
		t.Fatalf("hold the claim %s: %v %v", key, ok, err)
	}
	dial(t, tab, bob)
	waitPage(t, tab, "the page's call written to Redis", `window.dsmgw.player.obj.serverFields()[window.dsmgw.player.F.playerState] === 'connecting'`)

	frozen := s.Service(t, wsOn)
	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	thaw := func() {
		if err := frozen.Signal(syscall.SIGCONT); err != nil {
			t.Error(err)
		}
	}
	defer thaw() // a second SIGCONT is harmless
	if err := rdb.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	// claimBy's rescan (every 5 s) finds the unclaimed call.
	deadline := time.Now().Add(15 * time.Second)
	for {
		holder, err := rdb.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		if asadapter.ClaimInstance(holder) == claimBy {
			break
		}
		if holder != "" || time.Now().After(deadline) {
			t.Fatalf("claim of %s held by %q, want %s", player, holder, claimBy)
		}
		time.Sleep(50 * time.Millisecond)
	}
	thaw()

	waitPage(t, tab, "call connected with media", `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`)
	if got := mediaOwner(t, s, tab); got != claimBy {
		t.Fatalf("media URL names %s, want %s (the instance holding the termination)", got, claimBy)
	}
	if inst := within(t, tab, 5*time.Second, "instance", chromedp.Evaluate[string](`window.dsmgw.dsm.instance`)); inst != wsOn {
		t.Fatalf("the page's WebSocket moved to %s during the call", inst)
	}
	heard := listen(t, tab, bobHz)
	t.Logf("WebSocket on %s, call and media on %s; the page plays %.1f Hz at %.1f dBFS", wsOn, claimBy, heard.Hz, heard.DB)
	hangUp(t, tab)
}

// onInstance loads the page in a new tab and makes its DSM WebSocket land on instance:
// nginx hands connections out in turn and a reconnect of the page is one request, so at
// most one reconnect moves it to the other gateway (a second one guards against a
// request of someone else between).
func onInstance(t *testing.T, browser context.Context, url, instance string) context.Context {
	t.Helper()
	tab, inst := openPage(t, browser, url)
	for try := 0; inst != instance; try++ {
		if try == 4 {
			t.Fatalf("the page's WebSocket keeps landing on %s, want %s", inst, instance)
		}
		within(t, tab, 5*time.Second, "reconnect", chromedp.Evaluate[bool](`(() => {
			window.__welcomes = 0;
			if (!window.__counting) { window.dsmgw.dsm.onWelcome(() => window.__welcomes++); window.__counting = true; }
			window.dsmgw.dsm.ws.close();
			return true;
		})()`))
		waitPage(t, tab, "reconnected", `window.__welcomes > 0 && window.dsmgw.dsm.state === 'open'`)
		inst = within(t, tab, 5*time.Second, "instance", chromedp.Evaluate[string](`window.dsmgw.dsm.instance`))
	}
	return tab
}
