package gateway

import (
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/internal/testpeer"
)

// TestDemoSignInReachable: a page signed in with a demo session, and nothing else (no
// call of the registration API), is registered with the network: a phone (baresip behind
// Kamailio, which challenges every REGISTER) calls the user, the page rings, answers,
// and each side hears the other's tone; the quality line shows the media gateway's
// counters. Signing out un-registers the user.
func TestDemoSignInReachable(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
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
	cfg.DSMDemoSessions, cfg.UsersDemoPassword = true, testpeer.KamailioPassword
	serveApp(t, cfg, log, l)

	p := openPage(t, base, "alice", page1Hz)
	run(t, p, 30*time.Second, "registered", chromedp.Poll[bool](`document.getElementById('registration').dataset.state === 'registered'`))
	if s := run(t, p, 5*time.Second, "registration text", chromedp.Text(`#registration`)); s != "Reachable as sip:alice@dsmgw.test: calls to you ring here." {
		t.Fatalf("registration reads %q", s)
	}
	shotGateway(t, p, "signed-in-reachable")

	phone := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "carol", Registrar: k.Addr, ToneHz: phoneHz})
	waitBaresipRegistered(t, phone)
	if out, err := phone.Command("dial", "sip:alice@dsmgw.test"); err != nil {
		t.Fatalf("baresip dial: %q %v", out, err)
	}
	run(t, p, 30*time.Second, "ringing", chromedp.Poll[bool](`window.dsmgw.player.status.playerState === 'ringing' && !document.getElementById('incoming').hidden`))
	if who := run(t, p, 5*time.Second, "caller", chromedp.Text(`#caller`)); who != "carol" {
		t.Fatalf("the page says %q is calling", who)
	}
	run(t, p, 5*time.Second, "answer", chromedp.Click(chromedp.CSS(`#answer`)))
	run(t, p, 30*time.Second, "connected", chromedp.Poll[bool](`window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`))
	hears(t, "the page", p.listen(t), 8000, []float64{phoneHz}, nil)
	hears(t, "the phone", baresipRecording(t, phone, time.Second), 8000, []float64{page1Hz}, nil)
	// The media gateway's counters, which the adapter writes every 2 s, are in the
	// quality line.
	quality := run(t, p, 30*time.Second, "the gateway's counters on the page", chromedp.Poll[string](`(() => {
		const q = document.getElementById('quality').textContent;
		return / Gateway: the network lost .* on the way to you/.test(q) ? q : false; })()`))
	t.Logf("quality line: %s", quality)

	run(t, p, 5*time.Second, "hang up", chromedp.Click(chromedp.CSS(`#hangup`)))
	run(t, p, 30*time.Second, "call ended", chromedp.Poll[bool](`window.dsmgw.player.status.playerState === 'disconnected'`))

	// Signing out un-registers: the registration record is gone once the un-REGISTER is done.
	run(t, p, 10*time.Second, "sign out", chromedp.Click(chromedp.CSS(`#signout`)))
	for deadline := time.Now().Add(30 * time.Second); usersRegisterStatus(t, base, "alice") != http.StatusNotFound; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("alice is still registered after signing out")
		}
	}
}

// usersRegisterStatus asks the registration API (read only) for user's registration.
func usersRegisterStatus(t *testing.T, base, user string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/users/"+user+"/register", nil)
	req.Header.Set("Authorization", "Bearer "+os.Getenv("USERS_SECRET"))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}
