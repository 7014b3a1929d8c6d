package topology

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// micHz is the tone of the page's fake microphone; bob (baresip) answers with 440 Hz,
// so a different pitch tells the directions apart.
const micHz = 600

// writeToneWAV writes a 48 kHz mono 16-bit WAV of a tone, for Chromium's
// use-file-for-fake-audio-capture (it loops the file).
func writeToneWAV(t *testing.T, path string, hz float64) {
	t.Helper()
	const rate, secs = 48000, 2
	n := rate * secs
	b := make([]byte, 44+2*n)
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], rate)
	binary.LittleEndian.PutUint32(b[28:], rate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		s := int16(12000 * math.Sin(2*math.Pi*hz*float64(i)/rate))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startBrowser starts a private headless Chromium in the host namespace (a browser on
// the Docker host) with a fake microphone, and returns its context; each page gets a tab
// of its own (newTab).
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not installed (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	writeToneWAV(t, wav, micHz)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("HOME="+dir, "TMPDIR="+dir),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// newTab opens a tab of the browser, closed when the test ends.
func newTab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("new tab: %v", err)
	}
	return ctx
}

// pageState is what the page shows and knows, printed when a step fails.
const pageState = `JSON.stringify({conn: document.getElementById('conn')?.textContent,
	instance: window.dsmgw?.dsm?.instance, player: window.dsmgw?.player?.status})`

// within runs one browser action with a failure deadline.
func within[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](pageState))
		t.Fatalf("%s: %v (page: %s)", what, err, state)
	}
	return v
}

// openPage loads the demo page at url in a new tab and waits until its DSM client is
// connected; it returns the tab and the gateway instance the client's WebSocket reached.
func openPage(t *testing.T, browser context.Context, url string) (context.Context, string) {
	t.Helper()
	tab := newTab(t, browser)
	within(t, tab, 20*time.Second, "load "+url, chromedp.Navigate(url))
	within(t, tab, 20*time.Second, "DSM client connected through the load balancer",
		chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	inst := within(t, tab, 5*time.Second, "instance", chromedp.Evaluate[string](`window.dsmgw.dsm.instance`))
	return tab, inst
}

// tone is the pitch and level of what the page plays, from an AnalyserNode fed by the
// media worklet's output: what the user hears.
type tone struct {
	Hz     float64 `json:"hz"`
	DB     float64 `json:"db"`
	Played int     `json:"played"`
}

// listen attaches an analyser to the playing call's audio and waits until it hears a
// tone at hz (within two FFT bins, 12 Hz).
func listen(t *testing.T, tab context.Context, hz float64) tone {
	t.Helper()
	within(t, tab, 15*time.Second, "media worklet running", chromedp.Poll[bool](`(() => {
		const m = window.dsmgw.player.media;
		if (!m || !m.node || !m.ctx) return false;
		if (!window.__an || window.__an.context !== m.ctx) {
			const an = m.ctx.createAnalyser();
			an.fftSize = 8192;
			an.smoothingTimeConstant = 0;
			m.node.connect(an);
			window.__an = an;
		}
		return true;
	})()`))
	const probe = `(() => {
		const an = window.__an, d = new Float32Array(an.frequencyBinCount);
		an.getFloatFrequencyData(d);
		let best = 1;
		for (let i = 2; i < d.length; i++) if (d[i] > d[best]) best = i;
		return {hz: best * an.context.sampleRate / an.fftSize, db: d[best], played: window.dsmgw.player.status.stats.played};
	})()`
	deadline := time.Now().Add(15 * time.Second)
	var last tone
	for time.Now().Before(deadline) {
		last = within(t, tab, 5*time.Second, "analyse the call's audio", chromedp.Evaluate[tone](probe))
		// -50 dBFS: far above the silence of an idle worklet (-Inf or below -100).
		if last.DB > -50 && math.Abs(last.Hz-hz) <= 12 {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the page does not play a %.0f Hz tone: loudest %.1f Hz at %.1f dB after %d frames", hz, last.Hz, last.DB, last.Played)
	return last
}

// click clicks the element matched by a CSS selector.
func click(t *testing.T, tab context.Context, sel string) {
	t.Helper()
	within(t, tab, 20*time.Second, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// waitPage polls a JavaScript predicate in the page.
func waitPage(t *testing.T, tab context.Context, what, predicate string) {
	t.Helper()
	within(t, tab, 20*time.Second, what, chromedp.Poll[bool](predicate))
}
