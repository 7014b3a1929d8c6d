package webclient

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/zaf/g711"

	"dsmgw/internal/testpeer"
	"dsmgw/mediagw"
	"dsmgw/store"
)

// toneHz is the tone of the fake microphone: the test checks that it arrives at the far
// end at this pitch, which proves capture, resampling, G.711 and RTP together.
const toneHz = 440

// writeToneWAV writes a 48 kHz mono 16-bit WAV of a tone, for Chromium's
// use-file-for-fake-audio-capture (it loops the file).
func writeToneWAV(t *testing.T, path string) {
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
		s := int16(12000 * math.Sin(2*math.Pi*toneHz*float64(i)/rate))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// startBrowser starts a private headless Chromium with fake media devices and returns a
// chromedp context (a tab). HOME and TMPDIR point into the test's temporary folder.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	bin := testpeer.Need(t, "chromium")
	dir := t.TempDir()
	wav := filepath.Join(dir, "tone.wav")
	writeToneWAV(t, wav)
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
		chromedp.WindowSize(1100, 900),
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

// within runs one browser action with a failure deadline.
func within[T any](t *testing.T, ctx context.Context, d time.Duration, what string, a chromedp.Action[T]) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	v, err := chromedp.Run(c, a)
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({conn: document.getElementById('conn')?.textContent, player: window.dsmgw?.player?.status})`))
		t.Fatalf("%s: %v (page: %s)", what, err, state)
	}
	return v
}

// waitStore polls an object in Redis until ok accepts its fields.
func waitStore(t *testing.T, st *store.Store, obj, what string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, err := st.Snapshot(context.Background(), obj)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r.Fields) {
			return r.Fields
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s holds %v", what, obj, r.Fields)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func commit(t *testing.T, st *store.Store, obj string, ops ...store.Op) {
	t.Helper()
	if _, err := st.Commit(context.Background(), store.Commit{Obj: obj, Base: -1, Ops: ops}); err != nil {
		t.Fatalf("commit %s: %v", obj, err)
	}
}

// TestBrowserDemoPage loads the demo page in headless Chromium from an in-process gateway
// with a real media gateway: the DSM client connects, writes made in Go appear in the page
// and writes made in the page appear in Redis, the user adapter shows a participant list,
// and a call carries RTP both ways between the page and a UDP socket standing for the SIP
// side: the fake microphone's tone arrives as valid G.711 RTP, and RTP sent from the UDP
// side is played by the page's AudioWorklet.
func TestBrowserDemoPage(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayOptions{Instances: 1})
	st := g.Store
	ctx := startBrowser(t)

	mc := mountMediaGateway(t, g) // on the same server as the page, as cmd/gateway does

	// 1. The page connects and registers its player.
	within(t, ctx, 20*time.Second, "load the page", chromedp.Navigate(g.URLs[0]+"/?user=alice&processing=off"))
	within(t, ctx, 20*time.Second, "DSM client connected",
		chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	player := within(t, ctx, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))
	if _, _, ok := st.Schema().ParsePlayerAddress(player); !ok {
		t.Fatalf("page's player address %q", player)
	}
	waitStore(t, st, "players", "players index entry", func(f map[string]string) bool { return f[player] == "audio" })

	shot(t, ctx, "idle")
	if dis := within(t, ctx, 5*time.Second, "controls enabled", chromedp.Evaluate[bool](`document.getElementById('call').disabled`)); dis {
		t.Fatal("Call is disabled on a connected, idle page")
	}

	// 3. The users structure: registration and a participant list.
	commit(t, st, "users/alice", store.Set("registration", "registered"), store.Set("conferences", "conf-1"))
	commit(t, st, "users/alice/conf/conf-1", store.Set("sip:carol@example.com", `{"display":"Carol","status":"connected"}`))
	within(t, ctx, 10*time.Second, "participants shown",
		chromedp.Poll[bool](`document.getElementById('rosters').textContent.includes('Carol') &&
			document.getElementById('registration').dataset.state === 'registered'`))

	// 4. A write made in the page (dialling) appears in Redis.
	within(t, ctx, 5*time.Second, "dial", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`#remote`), "sip:bob@example.com"),
		chromedp.Click(chromedp.CSS(`#call`)),
	))
	f := waitStore(t, st, player, "player_state connecting written by the page", func(f map[string]string) bool {
		return f["player_state"] == "connecting"
	})
	if f["remote"] != "sip:bob@example.com" || f["service"] != "mmtel" || f["encoding"] != "PCMU" || f["progress"] != "" {
		t.Fatalf("player object after dialling: %v", f)
	}
	shot(t, ctx, "calling")

	// 4a. A write made in Go (as the AS adapter) appears in the page: in words, with
	// ringback, and raw in the technical details.
	commit(t, st, player, store.Set("mgw_state", "connecting"), store.Set("progress", "180 Ringing"))
	within(t, ctx, 10*time.Second, "Go write shown in the page",
		chromedp.Poll[bool](`document.getElementById('progress').textContent === '180 Ringing' &&
			document.getElementById('call-status').textContent === 'Ringing at bob…' &&
			window.dsmgw.tones.name === 'ringback'`))
	shot(t, ctx, "ringing-far-end")

	// 5. Media: act as the AS adapter with a UDP socket as the SIP side.
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	lt, err := mc.AddLocal(context.Background(), mediagw.AddLocalRequest{Owner: "webclient-test", Player: player})
	if err != nil {
		t.Fatal(err)
	}
	farPort := far.LocalAddr().(*net.UDPAddr).Port
	mu, err := mc.AddRemote(context.Background(), lt.ID, mediagw.Remote{Address: "127.0.0.1", RTPPort: farPort,
		PayloadTypes: []mediagw.PayloadType{{PT: 0, Name: "PCMU", ClockRate: 8000}}})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, st, player, store.Set("mgw_state", "connected"), store.Set("mgw_url", mu.URL), store.Del("progress"))
	within(t, ctx, 15*time.Second, "media connected",
		chromedp.Poll[bool](`window.dsmgw.player.status.media === 'connected'`))
	within(t, ctx, 10*time.Second, "ringback stops", chromedp.Poll[bool](`window.dsmgw.tones.name === ''`))
	waitStore(t, st, player, "player_state connected written by the page", func(f map[string]string) bool {
		return f["player_state"] == "connected"
	})

	// 5a. The fake microphone's tone arrives at the UDP side as G.711 RTP; the page's
	// microphone meter moves, the received meter stays still (nothing arrives yet).
	checkUplink(t, far)
	within(t, ctx, 10*time.Second, "microphone meter moves, received meter still",
		chromedp.Poll[bool](`document.getElementById('mic-meter').value > 0.05 && document.getElementById('rx-meter').value === 0 &&
			document.getElementById('media').textContent.startsWith('Connected, waiting for sound')`))
	shot(t, ctx, "connected-silent")

	// 5b. RTP from the UDP side is played by the page's worklet.
	dst := &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTPPort}
	toneDone := make(chan int, 1)
	go func() { toneDone <- sendTone(t, far, dst, 150) }()
	within(t, ctx, 15*time.Second, "received meter moves with the far end's audio",
		chromedp.Poll[bool](`document.getElementById('rx-meter').value > 0.05 && document.getElementById('media').textContent === 'Sound flows both ways.'`))
	shot(t, ctx, "connected")
	// Muted: the microphone meter falls to nothing (silence is sent instead).
	within(t, ctx, 5*time.Second, "mute", chromedp.Click(chromedp.CSS(`#mute`)))
	within(t, ctx, 10*time.Second, "muted", chromedp.Poll[bool](`document.getElementById('mic-meter').value === 0 &&
		document.getElementById('media').textContent === 'You are muted.'`))
	shot(t, ctx, "muted")
	within(t, ctx, 5*time.Second, "unmute", chromedp.Click(chromedp.CSS(`#mute`)))
	// Hold: the page asks (hold_intent), the AS adapter's hold "local" (written here as it
	// would after the far end's 2xx to its a=sendonly re-INVITE) is what the page shows.
	within(t, ctx, 5*time.Second, "hold", chromedp.Click(chromedp.CSS(`#hold`)))
	waitStore(t, st, player, "hold_intent written by the page", func(f map[string]string) bool { return f["hold_intent"] == "hold" })
	within(t, ctx, 10*time.Second, "holding", chromedp.Poll[bool](`document.getElementById('call-status').textContent === 'Putting bob on hold…'`))
	commit(t, st, player, store.Set("hold", "local"))
	within(t, ctx, 10*time.Second, "held", chromedp.Poll[bool](`document.getElementById('call-status').textContent === 'You put bob on hold' &&
		document.getElementById('hold').textContent === 'Resume'`))
	shot(t, ctx, "held")
	within(t, ctx, 5*time.Second, "resume", chromedp.Click(chromedp.CSS(`#hold`)))
	waitStore(t, st, player, "hold_intent deleted by the page", func(f map[string]string) bool { _, ok := f["hold_intent"]; return !ok })
	commit(t, st, player, store.Del("hold"))
	within(t, ctx, 10*time.Second, "resumed", chromedp.Poll[bool](`document.getElementById('call-status').textContent === 'In a call with bob'`))
	// On a phone's screen (390 px wide), Hang up and the keypad are on screen during the call.
	checkPhoneLayout(t, ctx)
	sent := <-toneDone
	within(t, ctx, 15*time.Second, "frames played by the worklet",
		chromedp.Poll[bool](fmt.Sprintf(`window.dsmgw.player.status.stats.decoded >= %d && window.dsmgw.player.status.stats.played >= %d`, sent*9/10, sent/2)))
	// Without audio from the far end the received meter falls still again.
	within(t, ctx, 10*time.Second, "received meter still after the far end stops",
		chromedp.Poll[bool](`document.getElementById('rx-meter').value === 0`))

	// 6. Hang up from the page.
	within(t, ctx, 5*time.Second, "hang up", chromedp.Click(chromedp.CSS(`#hangup`)))
	waitStore(t, st, player, "player_state disconnected written by the page", func(f map[string]string) bool {
		return f["player_state"] == "disconnected"
	})
	within(t, ctx, 10*time.Second, "media stopped", chromedp.Poll[bool](`window.dsmgw.player.status.media === 'idle'`))
	commit(t, st, player, store.Set("mgw_state", "disconnected"))
	within(t, ctx, 10*time.Second, "ended in words", chromedp.Poll[bool](`document.getElementById('call-status').textContent === 'Call ended' &&
		document.getElementById('progress').textContent === '–' && !document.getElementById('call').disabled`))
	shot(t, ctx, "ended")
}

// shot saves a screenshot of the page as <name>.png in DSMGW_SCREENSHOT_DIR (for a person
// to look at each state of the page); without the variable it does nothing.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("DSMGW_SCREENSHOT_DIR")
	if dir == "" {
		return
	}
	png := within(t, ctx, 10*time.Second, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// checkPhoneLayout narrows the page to a phone's screen (390 x 844 CSS pixels) and checks
// that Hang up and every keypad button lie inside the viewport without scrolling; it
// restores the desktop size.
func checkPhoneLayout(t *testing.T, ctx context.Context) {
	t.Helper()
	within(t, ctx, 5*time.Second, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	defer within(t, ctx, 5*time.Second, "desktop viewport", chromedp.EmulateViewport(1100, 900))
	within(t, ctx, 5*time.Second, "scroll to top", chromedp.Evaluate[bool](`window.scrollTo(0, 0); true`))
	type box struct {
		Name                     string
		Left, Top, Right, Bottom float64
	}
	boxes := within(t, ctx, 5*time.Second, "bounding boxes", chromedp.Evaluate[[]box](`[document.getElementById('hangup'),
		...document.querySelectorAll('#pad button')].map((e) => { const r = e.getBoundingClientRect();
		return { name: e.id || e.textContent, left: r.left, top: r.top, right: r.right, bottom: r.bottom }; })`))
	vw := within(t, ctx, 5*time.Second, "viewport", chromedp.Evaluate[[]float64](`[window.innerWidth, window.innerHeight, window.scrollY]`))
	if len(boxes) != 13 || len(vw) != 3 {
		t.Fatalf("boxes %v, viewport %v", boxes, vw)
	}
	for _, b := range boxes {
		if b.Left < 0 || b.Top < 0 || b.Right > vw[0] || b.Bottom > vw[1] || b.Right-b.Left < 40 {
			t.Fatalf("at 390 px, %q lies at %+v outside the viewport %v x %v", b.Name, b, vw[0], vw[1])
		}
	}
	shot(t, ctx, "connected-390px")
}

// checkUplink reads RTP at the far end until 50 packets of one stream arrived, and checks
// each: RTP version 2, payload type 0, 160 bytes of payload (20 ms), consecutive sequence
// numbers and timestamps 160 apart, and audio at the tone's pitch and a real level.
func checkUplink(t *testing.T, far *net.UDPConn) {
	t.Helper()
	buf := make([]byte, 2048)
	var prev *rtp.Packet
	var loud, crossings, n int
	deadline := time.Now().Add(20 * time.Second)
	for n < 50 {
		_ = far.SetReadDeadline(deadline)
		k, _, err := far.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("RTP from the page: %d packets, then %v", n, err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:k]); err != nil {
			t.Fatalf("packet %d is not RTP: %v", n, err)
		}
		if p.Version != 2 || p.PayloadType != 0 || len(p.Payload) != 160 {
			t.Fatalf("packet %d: version %d pt %d payload %d bytes", n, p.Version, p.PayloadType, len(p.Payload))
		}
		if prev != nil {
			if p.SSRC != prev.SSRC || p.SequenceNumber != prev.SequenceNumber+1 || p.Timestamp != prev.Timestamp+160 {
				t.Fatalf("packet %d: ssrc %d seq %d ts %d after ssrc %d seq %d ts %d", n, p.SSRC, p.SequenceNumber,
					p.Timestamp, prev.SSRC, prev.SequenceNumber, prev.Timestamp)
			}
		}
		pcm := g711.DecodeUlaw(p.Payload)
		var sum float64
		zc := 0
		last := int16(0)
		for i := 0; i+1 < len(pcm); i += 2 {
			s := int16(binary.LittleEndian.Uint16(pcm[i:]))
			sum += float64(s) * float64(s)
			if i > 0 && (s < 0) != (last < 0) {
				zc++
			}
			last = s
		}
		if math.Sqrt(sum/160) > 2000 {
			loud++
			crossings += zc
		}
		prev = &p
		n++
	}
	if loud < 25 {
		t.Fatalf("only %d of %d packets carry the tone", loud, n)
	}
	// A tone of f Hz crosses zero 2f times a second: 17.6 times in 20 ms at 440 Hz.
	perFrame := float64(crossings) / float64(loud)
	want := 2 * toneHz * 0.020
	if math.Abs(perFrame-want) > 3 {
		t.Fatalf("tone pitch: %.1f zero crossings per frame, want about %.1f", perFrame, want)
	}
	t.Logf("uplink: %d RTP packets, %d with the tone, %.1f zero crossings per frame (want %.1f)", n, loud, perFrame, want)
}

// sendTone sends count 20 ms PCMU packets of the tone from the far end, paced in real time
// (the jitter buffer plays at the real rate), and returns count.
func sendTone(t *testing.T, far *net.UDPConn, dst *net.UDPAddr, count int) int {
	t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x1234abcd, SequenceNumber: 1000, Timestamp: 5000}}
	lin := make([]byte, 320)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := range count {
		for j := range 160 {
			s := int16(8000 * math.Sin(2*math.Pi*toneHz*float64(i*160+j)/8000))
			binary.LittleEndian.PutUint16(lin[2*j:], uint16(s))
		}
		pkt.Payload = g711.EncodeUlaw(lin)
		pkt.Marker = i == 0
		b, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := far.WriteToUDP(b, dst); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Fatalf("send RTP: %v", err)
		}
		pkt.SequenceNumber++
		pkt.Timestamp += 160
		<-tick.C
	}
	return count
}

// mountMediaGateway runs a media gateway mounted on g's first instance (its API under
// /v1/, media under /media/), stopped when the test ends, and returns a client of its API.
func mountMediaGateway(t *testing.T, g *gateway) *mediagw.Client {
	t.Helper()
	const secret = "webclient-test-media-secret-0123"
	mgw, err := mediagw.New(mediagw.Config{
		BindAddr: "127.0.0.1", PublicWSURL: "ws" + strings.TrimPrefix(g.URLs[0], "http"), Secret: secret,
	}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	mdone := make(chan struct{})
	go func() { defer close(mdone); _ = mgw.Run(mctx) }()
	t.Cleanup(func() { mcancel(); <-mdone })
	g.mux[0].Handle("/v1/", mgw.APIHandler())
	g.mux[0].Handle("/media/", mgw.MediaHandler())
	mc, err := mediagw.NewClient(mediagw.ClientConfig{BaseURL: g.URLs[0], Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}
