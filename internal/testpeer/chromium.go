package testpeer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumOptions configures StartChromium.
type ChromiumOptions struct {
	// ToneHz is the tone its fake microphone plays (a 48 kHz file it loops, at 12000 of
	// full scale). Chromium takes one such file per browser process, so a test that needs
	// pages with tones of their own starts one browser per page.
	ToneHz int
	// Mic, when not empty, is what the fake microphone plays instead (48 kHz mono, looped),
	// e.g. clicks for a latency measurement.
	Mic []int16
}

// chromiumToneSeconds is the length of the looped tone file: a whole number of periods of
// any integer frequency (no click at the loop).
const chromiumToneSeconds = 2

// StartChromium starts a private headless Chromium with fake media devices (and, with
// ToneHz, a fake microphone playing that tone) and returns a chromedp context of its
// first tab. Its profile, HOME and TMPDIR are in a test temporary directory; chromedp
// ends the browser process when the test ends. A failed test prints the page's last
// console messages, exceptions and failed loads (chromiumJournal).
func StartChromium(t testing.TB, opts ChromiumOptions) context.Context {
	t.Helper()
	bin := Need(t, "chromium")
	dir := t.TempDir()
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("HOME="+dir, "TMPDIR="+dir),
		chromedp.WindowSize(1100, 900),
	)
	if opts.ToneHz > 0 || len(opts.Mic) > 0 {
		const rate = 48000
		tone := opts.Mic
		if len(tone) == 0 {
			tone = make([]int16, rate*chromiumToneSeconds)
			Sine(tone, rate, float64(opts.ToneHz), 12000, 0)
		}
		wav := filepath.Join(dir, "tone.wav")
		if err := os.WriteFile(wav, WAV(tone, rate), 0o600); err != nil {
			t.Fatalf("testpeer: chromium tone: %v", err)
		}
		flags = append(flags, chromedp.Flag("use-file-for-fake-audio-capture", wav))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout (see chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("testpeer: start chromium: %v", err)
	}
	var j chromiumJournal
	if err := j.watch(ctx); err != nil {
		t.Fatalf("testpeer: watch chromium: %v", err)
	}
	t.Cleanup(func() { j.report(t) })
	return ctx
}
