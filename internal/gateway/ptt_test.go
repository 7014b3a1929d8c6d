package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/floorctl"
	"dsmgw/imsdemo"
	"dsmgw/internal/testpeer"
)

// The tones of the three push-to-talk pages: far apart, none a harmonic of another.
const (
	ptt1Hz = 700
	ptt2Hz = 1150
	ptt3Hz = 1600
)

// tgDomain is the talk group domain of the test's CSCF and conference server.
const tgDomain = "ptt.dsmgw.test"

// pttMaxTalk is the talk group's maximum talk time: long enough for everything the test
// does while web1 holds the floor (on a loaded machine with three browsers that took
// over 10 s, and web1 was revoked in the middle), short enough to wait for a revoke.
const pttMaxTalk = 30 * time.Second

// floor returns the page's push-to-talk status (ptt.js).
func floor(t *testing.T, p *confPage) map[string]any {
	t.Helper()
	return run(t, p, 5*time.Second, "floor status", chromedp.Evaluate[map[string]any](`window.dsmgw.ptt.status`))
}

// waitFloor waits until the page's floor status satisfies cond (a JS expression over s).
func waitFloor(t *testing.T, p *confPage, what, cond string) {
	t.Helper()
	run(t, p, pttMaxTalk+30*time.Second, what, chromedp.Poll[bool](fmt.Sprintf(`(() => { const s = window.dsmgw.ptt.status; return %s; })()`, cond)))
}

// press holds the page's push-to-talk button (the space bar when key is set) and returns
// the page's clock when it did.
func press(t *testing.T, p *confPage, key bool) int64 {
	t.Helper()
	js := `(() => { const at = Date.now();
		document.getElementById('ptt').dispatchEvent(new PointerEvent('pointerdown', { pointerId: 1, bubbles: true, cancelable: true }));
		return at; })()`
	if key {
		js = `(() => { const at = Date.now();
			window.dispatchEvent(new KeyboardEvent('keydown', { code: 'Space', key: ' ', bubbles: true, cancelable: true }));
			return at; })()`
	}
	return int64(run(t, p, 5*time.Second, "press", chromedp.Evaluate[float64](js)))
}

// release lets the button (or the space bar) go.
func release(t *testing.T, p *confPage, key bool) {
	t.Helper()
	js := `document.getElementById('ptt').dispatchEvent(new PointerEvent('pointerup', { pointerId: 1, bubbles: true })); true`
	if key {
		js = `window.dispatchEvent(new KeyboardEvent('keyup', { code: 'Space', key: ' ', bubbles: true, cancelable: true })); true`
	}
	run(t, p, 5*time.Second, "release", chromedp.Evaluate[bool](js))
}

// grantedAt waits for the grant and returns the page's clock when the page saw it.
func grantedAt(t *testing.T, p *confPage) int64 {
	t.Helper()
	run(t, p, 5*time.Second, "watch for the grant", chromedp.Evaluate[bool](`window.grantAt = 0;
		window.dsmgw.ptt.onChange((s) => { if (s.floor === 'granted' && !window.grantAt) window.grantAt = Date.now(); }); true`))
	return int64(run(t, p, 30*time.Second, "granted", chromedp.Poll[float64](`window.grantAt || false`)))
}

// TestPushToTalkThreePages is push-to-talk end to end: Kamailio as the CSCF with digest
// users, the demo conference server hosting the talk group behind it, one gateway with
// every role, and three Chromium pages signed in as web1..web3, each with a tone of its
// own. Each joins the talk group from its push-to-talk card. The floor holder is heard by
// the two others and by nobody else; pages that hold their button while the floor is
// taken are queued (their audio does not pass) and granted in order on release; the
// maximum talk time revokes; closing the holder's browser releases the floor at once.
// The page shows who talks, the queue position, the countdown, and plays its tones.
// Times from press to grant are measured and logged, not asserted.
func TestPushToTalkThreePages(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	cfg := testConfig(t, r.Addr)
	log := testLog()
	rtp := 21000 + 2*rand.IntN(2500)
	confSrv, err := imsdemo.New(imsdemo.Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0",
		RTPBindAddr: "127.0.0.1", RTPPortMin: rtp, RTPPortMax: rtp + 199, Domain: confDomain,
		TalkGroupDomain: tgDomain, Floor: floorctl.Config{MaxTalk: pttMaxTalk}, DrainTimeout: 2 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopConf := context.WithCancel(context.Background())
	confDone := make(chan error, 1)
	go func() { confDone <- confSrv.Run(cctx) }()
	t.Cleanup(func() { stopConf(); <-confDone })
	// The CSCF relays the talk group domain to the conference server.
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ChallengeFrom: cfg.SIPListenUDP,
		ConfDomain: tgDomain, ConfServer: "sip:" + confSrv.Addr("udp")})

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPOutboundProxy, cfg.SIPDomain, cfg.SIPTalkGroupDomain = k.URI("udp"), "dsmgw.test", tgDomain
	cfg.SIPAuthUser, cfg.SIPAuthPassword = "dsmgw", testpeer.KamailioPassword
	cfg.SIPFloorBindAddr = "127.0.0.1"
	cfg.DSMDemoSessions = true // the demo page signs in with /session?user=<name>
	serveApp(t, cfg, log, l)

	pages := []*confPage{openPage(t, base, "web1", ptt1Hz), openPage(t, base, "web2", ptt2Hz), openPage(t, base, "web3", ptt3Hz)}
	p1, p2, p3 := pages[0], pages[1], pages[2]
	for i, p := range pages {
		register(t, base, os.Getenv("USERS_SECRET"), p, fmt.Sprintf("Web %d", i+1))
		run(t, p, 5*time.Second, "type the talk group", chromedp.SetValue(chromedp.CSS(`#talkgroup`), "crew"))
		run(t, p, 5*time.Second, "join", chromedp.Evaluate[bool](`document.getElementById('pttjoin').click(); true`))
		waitFloor(t, p, "in the talk group, floor idle", `s.floor === 'idle' && window.dsmgw.player.status.media === 'connected'`)
	}
	allTones := []float64{ptt1Hz, ptt2Hz, ptt3Hz}
	hears(t, "web2, nobody talks", p2.listen(t), 8000, nil, allTones)

	// web1 holds the button: granted, with the talk-permission tone and the countdown; the
	// others see web1 talk, with the floor-taken tone.
	at := press(t, p1, false)
	got := grantedAt(t, p1)
	t.Logf("web1: press to grant on the page %v", time.Duration(got-at)*time.Millisecond)
	st := floor(t, p1)
	if st["remaining"].(float64) < 1 || st["duration"].(float64) != pttMaxTalk.Seconds() {
		t.Errorf("web1's countdown %v", st)
	}
	for _, p := range []*confPage{p2, p3} {
		waitFloor(t, p, "taken by web1", `s.floor === 'taken' && s.talker === 'sip:web1@dsmgw.test'`)
		waitFloor(t, p, "the floor-taken tone", `window.dsmgw.ptt.tones.includes('taken')`)
		if text := run(t, p, 5*time.Second, "floor text", chromedp.Evaluate[string](`document.getElementById('floor').textContent`)); text != "sip:web1@dsmgw.test is talking" {
			t.Errorf("%s shows %q", p.user, text)
		}
	}
	waitFloor(t, p1, "the talk-permission tone", `window.dsmgw.ptt.tones.includes('permission')`)

	// web2 and web3 hold their buttons too (web3 with the space bar): queued in order;
	// their microphones send, but the gateway passes only web1's audio.
	press(t, p2, false)
	waitFloor(t, p2, "queued first", `s.floor === 'queued' && s.position === 1`)
	press(t, p3, true)
	waitFloor(t, p3, "queued second", `s.floor === 'queued' && s.position === 2`)
	hears(t, "web2, web1 talks", p2.listen(t, ptt1Hz), 8000, []float64{ptt1Hz}, []float64{ptt2Hz, ptt3Hz})
	hears(t, "web3, web1 talks", p3.listen(t, ptt1Hz), 8000, []float64{ptt1Hz}, []float64{ptt2Hz, ptt3Hz})
	hears(t, "web1, web1 talks", p1.listen(t), 8000, nil, allTones)

	// web1 lets go: web2 is granted, web3 moves up.
	release(t, p1, false)
	waitFloor(t, p2, "granted after web1", `s.floor === 'granted'`)
	waitFloor(t, p3, "queued first after web1", `s.floor === 'queued' && s.position === 1`)
	waitFloor(t, p1, "taken by web2", `s.floor === 'taken' && s.talker === 'sip:web2@dsmgw.test'`)
	hears(t, "web1, web2 talks", p1.listen(t, ptt2Hz), 8000, []float64{ptt2Hz}, []float64{ptt1Hz, ptt3Hz})
	hears(t, "web3, web2 talks", p3.listen(t, ptt2Hz), 8000, []float64{ptt2Hz}, []float64{ptt1Hz, ptt3Hz})

	// web2 keeps talking: the maximum talk time revokes the floor, and web3 gets it.
	waitFloor(t, p2, "revoked", `s.floor !== 'granted' && s.reason.startsWith('revoked')`)
	waitFloor(t, p2, "the revoke tone", `window.dsmgw.ptt.tones.includes('denied')`)
	waitFloor(t, p3, "granted after the revoke", `s.floor === 'granted'`)
	release(t, p2, false)
	hears(t, "web1, web3 talks", p1.listen(t, ptt3Hz), 8000, []float64{ptt3Hz}, []float64{ptt1Hz, ptt2Hz})

	// web1 queues behind web3; web3's media WebSocket closes while it holds the floor (as
	// when its tab closes or its network drops; here the page stops its media): the floor
	// is web1's at once, without waiting for the call or the page's session to end.
	press(t, p1, false)
	waitFloor(t, p1, "queued behind web3", `s.floor === 'queued' && s.position === 1`)
	run(t, p1, 5*time.Second, "watch for the grant", chromedp.Evaluate[bool](`window.grantAt = 0;
		window.dsmgw.ptt.onChange((s) => { if (s.floor === 'granted' && !window.grantAt) window.grantAt = Date.now(); }); true`))
	closed := p1.now(t)
	run(t, p3, 5*time.Second, "close web3's media", chromedp.Evaluate[bool](`window.dsmgw.player.stopMedia(); true`))
	granted := int64(run(t, p1, 30*time.Second, "granted after web3's media closed", chromedp.Poll[float64](`window.grantAt || false`)))
	t.Logf("web3's media closed to web1 granted on its page: %v", time.Duration(granted-closed)*time.Millisecond)
	hears(t, "web2, web1 talks again", p2.listen(t, ptt1Hz), 8000, []float64{ptt1Hz}, []float64{ptt2Hz, ptt3Hz})
	release(t, p1, false)
	waitFloor(t, p2, "idle at the end", `s.floor === 'idle'`)
}
