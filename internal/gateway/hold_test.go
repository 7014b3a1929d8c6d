package gateway

import (
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/internal/testpeer"
)

// TestPageHoldsThroughAdapter: the page calls sipp and clicks Hold; the adapter
// re-INVITEs with a=sendonly (sipp's scenario checks the body: a wrong direction fails
// it) and the page says it put the far end on hold once sipp answered; Resume
// re-INVITEs with a=sendrecv and the page is back in the call; Hang up ends it, and sipp
// ends with every check passed.
func TestPageHoldsThroughAdapter(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	cfg := testConfig(t, r.Addr)
	log := testLog()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	serveApp(t, cfg, log, l)
	// The adapter's own test scenario: the page must produce what the adapter's test
	// writes by hand.
	scen, err := filepath.Abs("../../asadapter/testdata/hold_local.xml")
	if err != nil {
		t.Fatal(err)
	}
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scen, RTPEcho: true, Args: []string{"-m", "1"}})

	p := openPage(t, base, "", page1Hz)
	run(t, p, 5*time.Second, "dial", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`#remote`), "sip:far@"+sipp.Addr),
		chromedp.Click(chromedp.CSS(`#call`)),
	))
	run(t, p, 30*time.Second, "connected", chromedp.Poll[bool](`window.dsmgw.player.status.playerState === 'connected' && window.dsmgw.player.status.media === 'connected'`))
	hears(t, "the page (its own tone echoed)", p.listen(t), 8000, []float64{page1Hz}, nil)

	run(t, p, 5*time.Second, "hold", chromedp.Click(chromedp.CSS(`#hold`)))
	held := run(t, p, 30*time.Second, "held", chromedp.Poll[string](`(() => {
		const s = window.dsmgw.player.status, b = document.getElementById('hold');
		const text = document.getElementById('call-status').textContent;
		return s.hold === 'local' && b.textContent === 'Resume' && b.getAttribute('aria-pressed') === 'true' && text; })()`))
	if held != "You put far on hold" {
		t.Fatalf("a held call reads %q", held)
	}
	shotGateway(t, p, "held-through-adapter")

	run(t, p, 5*time.Second, "resume", chromedp.Click(chromedp.CSS(`#hold`)))
	back := run(t, p, 30*time.Second, "resumed", chromedp.Poll[string](`(() => {
		const s = window.dsmgw.player.status, b = document.getElementById('hold');
		const text = document.getElementById('call-status').textContent;
		return s.hold === '' && b.textContent === 'Hold' && b.getAttribute('aria-pressed') === 'false' && text; })()`))
	if back != "In a call with far" {
		t.Fatalf("a resumed call reads %q", back)
	}
	hears(t, "the page after resuming", p.listen(t), 8000, []float64{page1Hz}, nil)

	run(t, p, 5*time.Second, "hang up", chromedp.Click(chromedp.CSS(`#hangup`)))
	if rc, err := sipp.Wait(30 * time.Second); err != nil || rc != 0 {
		t.Fatalf("sipp: exit %d, %v (a re-INVITE's direction was wrong or a message missing)", rc, err)
	}
}
