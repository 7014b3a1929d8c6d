package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/asadapter/users"
	"dsmgw/imsdemo"
	"dsmgw/internal/testpeer"
)

// The tones of the three participants: far apart, and none a harmonic of another, so that
// each is measured on its own after G.711 and mixing.
const (
	phoneHz = 440  // baresip
	page1Hz = 700  // the first page's fake microphone
	page2Hz = 1150 // the second page's
)

// confDomain is the conference domain of the test's CSCF and conference server.
const confDomain = "conf.dsmgw.test"

// level thresholds of the frequency analysis (amplitudes from testpeer.ToneLevel): the
// tones are sent at 12000 (the pages) and about 13000 (baresip), and a loaded machine's
// gaps lower what arrives, so a tone heard is anything above 1000; a participant's own
// tone, which the mixer leaves out, measures tens (G.711 quantisation noise), so 300 is
// "not heard".
const (
	heardLevel    = 1000
	notHeardLevel = 300
)

// confPage is one browser page of the test: its own Chromium (its own tone), signed in as
// user.
type confPage struct {
	user   string
	toneHz float64
	ctx    context.Context
	client string
}

// run runs a browser action on the page with a failure deadline.
func run[T any](t testing.TB, p *confPage, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		state, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`JSON.stringify({player: window.dsmgw?.player?.status,
			people: document.getElementById('rosters')?.textContent, reg: document.getElementById('registration')?.textContent})`))
		t.Fatalf("%s: %s: %v (page: %s)", p.user, what, err, state)
	}
	return v
}

// openPage opens the demo page signed in as user in a Chromium of its own and installs
// a tap that keeps the last ten seconds of what the page receives, with the time each
// frame arrived.
func openPage(t testing.TB, base, user string, toneHz int) *confPage {
	t.Helper()
	p := &confPage{user: user, toneHz: float64(toneHz), ctx: testpeer.StartChromium(t, testpeer.ChromiumOptions{ToneHz: toneHz})}
	run(t, p, 30*time.Second, "load the page", chromedp.Navigate(base+"/?user="+user+"&processing=off"))
	run(t, p, 30*time.Second, "page ready", chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	p.client = run(t, p, 5*time.Second, "client key", chromedp.Evaluate[string](`window.dsmgw.dsm.client`))
	run(t, p, 5*time.Second, "tap", chromedp.Evaluate[bool](`window.heard = []; window.dsmgw.player.tap = (pcm) => {
		window.heard.push([Date.now(), Array.from(pcm)]);
		if (window.heard.length > 500) window.heard.shift();
	}; true`))
	return p
}

// heard returns what the page received from since (its clock, unix ms): the samples and the
// arrival time of each 160-sample frame.
func (p *confPage) heard(t *testing.T, since int64) ([]int16, []int64) {
	t.Helper()
	frames := run(t, p, 10*time.Second, "read what the page heard",
		chromedp.Evaluate[[][]json.RawMessage](fmt.Sprintf(`window.heard.filter((f) => f[0] >= %d)`, since)))
	var samples []int16
	var at []int64
	for _, f := range frames {
		var ms int64
		var pcm []int16
		if len(f) != 2 || json.Unmarshal(f[0], &ms) != nil || json.Unmarshal(f[1], &pcm) != nil {
			t.Fatalf("%s: bad frame from the tap", p.user)
		}
		samples = append(samples, pcm...)
		at = append(at, ms)
	}
	return samples, at
}

// now returns the page's clock (unix ms).
func (p *confPage) now(t testing.TB) int64 {
	t.Helper()
	return int64(run(t, p, 5*time.Second, "clock", chromedp.Evaluate[float64](`Date.now()`)))
}

// timeToHear waits until the page hears every tone of want (each above heardLevel in a
// 100 ms window of frames that arrived after since) and returns how long after since the
// first window that holds them all ended. It is a measurement: the test only reports it.
func (p *confPage) timeToHear(t *testing.T, since int64, want ...float64) time.Duration {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	const window = 5 // frames of 20 ms
	for {
		s, at := p.heard(t, since)
		for i := 0; i+window <= len(at); i++ {
			w := s[i*160 : (i+window)*160]
			all := true
			for _, f := range want {
				all = all && testpeer.ToneLevel(w, 8000, f) > heardLevel
			}
			if all {
				return time.Duration(at[i+window-1]-since) * time.Millisecond
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never heard %v in 30 s (%d frames)", p.user, want, len(at))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listen returns the next second the page hears. With after, it starts once the page
// hears those tones: audio of the previous talker still in the relay's and the page's
// buffers when the floor or the room changed comes before them, and is not what the
// room sends now.
func (p *confPage) listen(t *testing.T, after ...float64) []int16 {
	t.Helper()
	if len(after) > 0 {
		p.timeToHear(t, p.now(t), after...)
	}
	from := p.now(t)
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, _ := p.heard(t, from)
		if len(s) >= 8000 {
			return s[:8000]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s heard %d samples in a second", p.user, len(s))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hears checks the tones in what a participant heard: each of want above heardLevel, each
// of not below notHeardLevel; it logs the levels.
func hears(t *testing.T, who string, s []int16, rate float64, want, not []float64) {
	t.Helper()
	var levels []string
	for _, f := range append(append([]float64(nil), want...), not...) {
		levels = append(levels, fmt.Sprintf("%v Hz %.0f", f, testpeer.ToneLevel(s, rate, f)))
	}
	t.Logf("%s hears %s", who, strings.Join(levels, ", "))
	for _, f := range want {
		if l := testpeer.ToneLevel(s, rate, f); l < heardLevel {
			t.Errorf("%s hears %v Hz at %.0f, want it", who, f, l)
		}
	}
	for _, f := range not {
		if l := testpeer.ToneLevel(s, rate, f); l > notHeardLevel {
			t.Errorf("%s hears %v Hz at %.0f, want nothing (its own tone)", who, f, l)
		}
	}
}

// register posts the page's registration to the users API as the web server does after
// signing the user in: the test CSCF's password, the page's client key.
func register(t *testing.T, base, secret string, p *confPage, display string) {
	t.Helper()
	body, _ := json.Marshal(users.RegisterRequest{SIPURI: "sip:" + p.user + "@dsmgw.test", AuthUser: p.user,
		Password: testpeer.KamailioPassword, Client: p.client, Display: display})
	req, _ := http.NewRequest("POST", base+"/v1/users/"+p.user+"/register", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("register %s: %d", p.user, res.StatusCode)
	}
	run(t, p, 30*time.Second, "registered", chromedp.Poll[bool](`document.getElementById('registration').dataset.state === 'registered'`))
}

// join types the room into the page's conference field and presses Join; it returns the
// page's clock when it did.
func join(t *testing.T, p *confPage, room string) int64 {
	t.Helper()
	run(t, p, 5*time.Second, "type the room", chromedp.SetValue(chromedp.CSS(`#conference`), room))
	return int64(run(t, p, 5*time.Second, "join", chromedp.Evaluate[float64](
		`(() => { const at = Date.now(); document.getElementById('join').click(); return at; })()`)))
}

// participants is the page's roster of room: display name → state shown.
func participants(room string) string {
	return fmt.Sprintf(`Object.fromEntries([...document.querySelectorAll('.roster[data-conference=%q] li')].map((li) => [li.title, li.dataset.status]))`, room)
}

// metric reads one sample of the gateway's /metrics ("" when absent).
func metric(t testing.TB, base, sample string) string {
	t.Helper()
	_, body := get(t, base+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			return v
		}
	}
	return ""
}

// TestConferenceOfTwoPagesAndAPhone is the conference of the demo IMS, end to end:
// Kamailio as the CSCF with digest users (it challenges every INVITE and BYE of the
// gateway and accepts only the caller's own credentials), the demo conference server
// behind it, one gateway with every role, baresip (440 Hz) and two Chromium pages with
// tones of their own (700 and 1150 Hz), signed in as web1 and web2. The phone dials the
// room; each page presses Join. Each participant hears the two others and not itself
// (frequency analysis of what each page receives, and of baresip's recording); each page
// shows three participants connected; web2 leaves, and web1's page shows it gone. The
// time from Join to hearing the room, and from Leave to the other page showing it, are
// measured and logged, not asserted.
func TestConferenceOfTwoPagesAndAPhone(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	cfg := testConfig(t, r.Addr)
	log := testLog()

	// The conference server, in process.
	// Its RTP ports below the kernel's ephemeral range, where the peers' free ports are not
	// drawn, and apart from other tests' (a random window).
	rtp := 21000 + 2*rand.IntN(2500)
	confSrv, err := imsdemo.New(imsdemo.Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0",
		RTPBindAddr: "127.0.0.1", RTPPortMin: rtp, RTPPortMax: rtp + 199, Domain: confDomain,
		DrainTimeout: 2 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopConf := context.WithCancel(context.Background())
	confDone := make(chan error, 1)
	go func() { confDone <- confSrv.Run(cctx) }()
	t.Cleanup(func() { stopConf(); <-confDone })

	// The CSCF challenges what the gateway's SIP listener sends.
	k := testpeer.StartKamailioWith(t, testpeer.KamailioOptions{ChallengeFrom: cfg.SIPListenUDP,
		ConfDomain: confDomain, ConfServer: "sip:" + confSrv.Addr("udp")})

	// The gateway: every role, through the CSCF, rooms in the conference domain.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPOutboundProxy, cfg.SIPDomain, cfg.UsersConfDom = k.URI("udp"), "dsmgw.test", confDomain
	cfg.SIPAuthUser, cfg.SIPAuthPassword = "dsmgw", testpeer.KamailioPassword
	cfg.DSMDemoSessions = true // the demo page signs in with /session?user=<name>
	serveApp(t, cfg, log, l)

	// The phone is in the room first.
	room := "r1"
	phone := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "carol", Registrar: k.Addr, ToneHz: phoneHz})
	waitBaresipRegistered(t, phone)
	if out, err := phone.Command("dial", "sip:"+room+"@"+confDomain); err != nil {
		t.Fatalf("baresip dial: %q %v", out, err)
	}

	page1 := openPage(t, base, "web1", page1Hz)
	page2 := openPage(t, base, "web2", page2Hz)
	register(t, base, os.Getenv("USERS_SECRET"), page1, "Web One")
	register(t, base, os.Getenv("USERS_SECRET"), page2, "Web Two")

	// Join, one page after the other; each hears who is in the room already.
	at1 := join(t, page1, room)
	d1 := page1.timeToHear(t, at1, phoneHz)
	at2 := join(t, page2, room)
	d2 := page2.timeToHear(t, at2, phoneHz, page1Hz)
	t.Logf("join to hearing the room: web1 %v (the phone), web2 %v (the phone and web1)", d1, d2)

	// Each page shows the three participants connected.
	want := map[string]string{"sip:web1@dsmgw.test": "connected", "sip:web2@dsmgw.test": "connected"}
	for _, p := range []*confPage{page1, page2} {
		run(t, p, 30*time.Second, "three participants connected", chromedp.Poll[bool](fmt.Sprintf(`(() => {
			const r = %s; const v = Object.values(r);
			return v.length === 3 && v.every((s) => s === 'connected') && !!r['sip:web1@dsmgw.test'] && !!r['sip:web2@dsmgw.test'];
		})()`, participants(room))))
		roster := run(t, p, 5*time.Second, "roster", chromedp.Evaluate[map[string]string](participants(room)))
		for who, st := range want {
			if roster[who] != st {
				t.Fatalf("%s shows %v", p.user, roster)
			}
		}
	}

	// Each hears the others and not itself.
	hears(t, "web1", page1.listen(t, phoneHz, page2Hz), 8000, []float64{phoneHz, page2Hz}, []float64{page1Hz})
	hears(t, "web2", page2.listen(t, phoneHz, page1Hz), 8000, []float64{phoneHz, page1Hz}, []float64{page2Hz})
	hears(t, "baresip", baresipRecording(t, phone, time.Second), 8000, []float64{page1Hz, page2Hz}, []float64{phoneHz})

	// web2 leaves; web1's page shows it gone.
	run(t, page1, 5*time.Second, "watch for web2 leaving", chromedp.Evaluate[bool](fmt.Sprintf(`window.goneAt = 0;
		new MutationObserver(() => {
			if (!window.goneAt && (%s)['sip:web2@dsmgw.test'] === 'disconnected') window.goneAt = Date.now();
		}).observe(document.getElementById('rosters'), { subtree: true, childList: true, attributes: true }); true`, participants(room))))
	left := int64(run(t, page2, 5*time.Second, "leave", chromedp.Evaluate[float64](
		`(() => { const at = Date.now(); document.getElementById('hangup').click(); return at; })()`)))
	seen := int64(run(t, page1, 30*time.Second, "web2 shown gone", chromedp.Poll[float64](`window.goneAt || false`)))
	t.Logf("leave to the other page showing it: %v", time.Duration(seen-left)*time.Millisecond)
	hears(t, "web1 after web2 left", page1.listen(t, phoneHz), 8000, []float64{phoneHz}, []float64{page1Hz, page2Hz})

	// web2's page stopped watching the room: its participant list is gone, and the
	// conference server's terminating NOTIFY was answered in the dialog, not with 481.
	run(t, page2, 30*time.Second, "room left", chromedp.Poll[bool](fmt.Sprintf(
		`window.dsmgw.player.status.playerState === 'disconnected' && Object.keys(%s).length === 0`, participants(room))))
	for deadline := time.Now().Add(30 * time.Second); metric(t, base, `asadapter_notifies_total{result="ending"}`) == ""; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no terminating NOTIFY after web2 left the room")
		}
	}
	if n := metric(t, base, `asadapter_notifies_total{result="no_subscription"}`); n != "" {
		t.Fatalf("%s NOTIFYs answered 481", n)
	}

	run(t, page1, 10*time.Second, "web1 leaves", chromedp.Evaluate[bool](`document.getElementById('hangup').click(); true`))
	run(t, page1, 30*time.Second, "web1 left", chromedp.Poll[bool](`window.dsmgw.player.status.playerState === 'disconnected'`))
}

// waitBaresipRegistered waits until baresip reports its account registered.
func waitBaresipRegistered(t testing.TB, b *testpeer.Baresip) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := b.Command("reginfo", "")
		if err == nil && strings.Contains(out, "OK") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip not registered: %q %v", out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// baresipRecording waits until baresip's recording of what it receives holds d past what
// it held when called, and returns that new audio (8 kHz).
func baresipRecording(t *testing.T, b *testpeer.Baresip, d time.Duration) []int16 {
	t.Helper()
	read := func() ([]int16, int) {
		files, _ := filepath.Glob(filepath.Join(b.Dir, "*dec*.wav"))
		var best []int16
		rate := 0
		for _, f := range files {
			if s, r, err := testpeer.ReadWAV(f); err == nil && len(s) > len(best) {
				best, rate = s, r
			}
		}
		return best, rate
	}
	start, _ := read()
	deadline := time.Now().Add(d + 30*time.Second)
	for {
		s, rate := read()
		if rate > 0 && len(s)-len(start) >= int(d.Seconds()*float64(rate)) {
			if rate != 8000 {
				t.Fatalf("baresip records at %d Hz", rate)
			}
			return s[len(start):]
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip recorded %d samples at %d Hz", len(s), rate)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
