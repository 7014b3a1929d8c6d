package gateway

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/internal/testpeer"
)

// TestReloadDuringCall: a page calls bob (baresip behind Kamailio, a 440 Hz tone) by
// typing "bob" (completed with the SIP domain), hears him, and is reloaded after the media
// token in its URL expired (MGW_TOKEN_TTL shortened to 2 s). It comes back with the same
// session (sessionStorage), the same client key and the same call, asks the adapter for
// a fresh media URL (POST /v1/terminations/{id}/token) and hears bob again. Then the tab
// leaves the page for good: once DSM_GRACE (3 s here) has passed without its client key,
// the call ends (bob gets a BYE, the adapter holds no call).
func TestReloadDuringCall(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	t.Setenv("MGW_TOKEN_TTL", "2s")
	t.Setenv("DSM_GRACE", "3s")
	cfg := testConfig(t, r.Addr)
	log := testLog()
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ChallengeFrom: cfg.SIPListenUDP})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPOutboundProxy, cfg.SIPDomain = k.URI("udp"), "dsmgw.test"
	cfg.SIPAuthUser, cfg.SIPAuthPassword = "dsmgw", testpeer.KamailioPassword
	serveApp(t, cfg, log, l)
	bob := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "bob", Registrar: k.Addr, ToneHz: phoneHz})
	waitBaresipRegistered(t, bob)

	p := openPage(t, base, "", page1Hz)
	run(t, p, 5*time.Second, "dial bob", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`#remote`), "bob"),
		chromedp.Click(chromedp.CSS(`#call`)),
	))
	connected := `window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`
	run(t, p, 30*time.Second, "call connected", chromedp.Poll[bool](connected))
	if remote := run(t, p, 5*time.Second, "remote", chromedp.Evaluate[string](`window.dsmgw.player.status.remote`)); remote != "sip:bob@dsmgw.test" {
		t.Fatalf("'bob' became %q", remote)
	}
	hears(t, "the page", p.listen(t), 8000, []float64{phoneHz}, nil)
	oldURL := run(t, p, 5*time.Second, "media URL", chromedp.Evaluate[string](`window.dsmgw.player.status.mgwURL`))

	// Reload once the URL's token has expired.
	run(t, p, 30*time.Second, "media token expired", chromedp.Poll[bool](`(() => {
		const exp = Number(new URL(window.dsmgw.player.status.mgwURL).searchParams.get('token').split('.')[0]);
		return Date.now() > exp * 1000 + 500; })()`))
	run(t, p, 30*time.Second, "reload", chromedp.Reload())
	run(t, p, 30*time.Second, "page back", chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	if c := run(t, p, 5*time.Second, "client key", chromedp.Evaluate[string](`window.dsmgw.dsm.client`)); c != p.client {
		t.Fatalf("client key %q after the reload, %q before", c, p.client)
	}
	run(t, p, 5*time.Second, "tap", chromedp.Evaluate[bool](`window.heard = []; window.dsmgw.player.tap = (pcm) => {
		window.heard.push([Date.now(), Array.from(pcm)]);
		if (window.heard.length > 500) window.heard.shift();
	}; true`))
	run(t, p, 30*time.Second, "call connected again", chromedp.Poll[bool](connected+` && document.getElementById('call-status').textContent === 'In a call with bob'`))
	newURL := run(t, p, 5*time.Second, "media URL", chromedp.Evaluate[string](`window.dsmgw.player.status.mgwURL`))
	if newURL == oldURL || strings.Split(newURL, "?")[0] != strings.Split(oldURL, "?")[0] {
		t.Fatalf("media URL after the reload %q, before %q: want a fresh token for the same termination", newURL, oldURL)
	}
	hears(t, "the reloaded page", p.listen(t), 8000, []float64{phoneHz}, nil)
	shotGateway(t, p, "reloaded-connected")

	// The tab leaves the page for good: after the grace period the call ends.
	run(t, p, 10*time.Second, "leave the page", chromedp.Navigate("about:blank"))
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if metric(t, base, `asadapter_calls{direction="out"}`) == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the call of a closed page is still up after the grace period")
		}
	}
	if n := metric(t, base, `asadapter_call_results_total{result="taken_over"}`); n != "" && n != "0" {
		t.Fatalf("%s takeovers", n)
	}
	t.Logf("results: local_bye %s, remote_bye %s", metric(t, base, `asadapter_call_results_total{result="local_bye"}`),
		metric(t, base, `asadapter_call_results_total{result="remote_bye"}`))
}

// shotGateway saves a screenshot of page p as <name>.png in DSMGW_SCREENSHOT_DIR, if set.
func shotGateway(t *testing.T, p *confPage, name string) {
	t.Helper()
	dir := os.Getenv("DSMGW_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png := run(t, p, 10*time.Second, "screenshot", chromedp.FullScreenshot(100))
	if err := os.WriteFile(dir+"/"+name+".png", png, 0o644); err != nil {
		t.Fatal(err)
	}
}
