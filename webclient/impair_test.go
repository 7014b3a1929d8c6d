package webclient

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/mediagw"
	"dsmgw/store"
)

// impairRelay stands between the far end and the media gateway (this kernel has no
// netem): what comes from the gateway (dst) goes to the far end unchanged; what comes
// from the far end goes to the gateway, a share of it dropped and another share held back
// until the next one went out (reordered by one). The gateway sees the relay as the far
// end.
type impairRelay struct {
	conn          *net.UDPConn
	dst, far      *net.UDPAddr
	drop, reorder float64
	rng           *rand.Rand

	mu                   sync.Mutex // guards the counts
	passed, dropped, swp int
}

func startImpairRelay(t *testing.T, dst, far *net.UDPAddr, drop, reorder float64, seed uint64) *impairRelay {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &impairRelay{conn: c, dst: dst, far: far, drop: drop, reorder: reorder, rng: rand.New(rand.NewPCG(seed, 1))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		var held []byte
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if from.Port == dst.Port {
				_, _ = c.WriteToUDP(buf[:n], far)
				continue
			}
			pkt := append([]byte(nil), buf[:n]...)
			r.mu.Lock()
			switch x := r.rng.Float64(); {
			case x < r.drop:
				r.dropped++
			case x < r.drop+r.reorder && held == nil:
				held = pkt // goes out after the next one
				r.swp++
			default:
				_, _ = c.WriteToUDP(pkt, dst)
				r.passed++
				if held != nil {
					_, _ = c.WriteToUDP(held, dst)
					r.passed++
					held = nil
				}
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return r
}

func (r *impairRelay) counts() (passed, dropped, reordered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.passed, r.dropped, r.swp
}

// TestPageImpairedMedia: the far end's RTP reaches the media gateway through a relay that
// drops 5% and reorders 2% of the packets. The page keeps playing (at least half the
// frames sent are played: a loaded machine's playout drops some), shows the loss on its
// quality line, and its concealment does not click: in what the worklet plays, no step
// between two samples is far above the largest step of the tone itself.
func TestPageImpairedMedia(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayOptions{Instances: 1})
	st := g.Store
	ctx := startBrowser(t)
	mc := mountMediaGateway(t, g) // on the same server as the page, as cmd/gateway does

	within(t, ctx, 20*time.Second, "load the page", chromedp.Navigate(g.URLs[0]+"/?processing=off"))
	within(t, ctx, 20*time.Second, "DSM client connected",
		chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	player := within(t, ctx, 5*time.Second, "record", chromedp.Evaluate[string](`window.played = [];
		window.dsmgw.player.opts.record = true;
		window.dsmgw.player.outTap = (pcm) => { if (window.played.length < 400) window.played.push(Array.from(pcm, (x) => Math.round(x * 32768))); };
		window.dsmgw.player.addr`))
	within(t, ctx, 5*time.Second, "dial", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`#remote`), "sip:far@example.com"),
		chromedp.Click(chromedp.CSS(`#call`)),
	))
	waitStore(t, st, player, "dialled", func(f map[string]string) bool { return f["player_state"] == "connecting" })

	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	lt, err := mc.AddLocal(context.Background(), mediagw.AddLocalRequest{Owner: "webclient-test", Player: player})
	if err != nil {
		t.Fatal(err)
	}
	relay := startImpairRelay(t, &net.UDPAddr{IP: net.ParseIP(lt.Address), Port: lt.RTPPort}, far.LocalAddr().(*net.UDPAddr), 0.05, 0.02, 11)
	mu, err := mc.AddRemote(context.Background(), lt.ID, mediagw.Remote{Address: "127.0.0.1", RTPPort: relay.conn.LocalAddr().(*net.UDPAddr).Port,
		PayloadTypes: []mediagw.PayloadType{{PT: 0, Name: "PCMU", ClockRate: 8000}}})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, st, player, store.Set("mgw_state", "connected"), store.Set("mgw_url", mu.URL))
	within(t, ctx, 15*time.Second, "media connected", chromedp.Poll[bool](`window.dsmgw.player.status.media === 'connected'`))

	// The far end sends to the relay, which the gateway knows as the far end.
	sent := sendTone(t, far, relay.conn.LocalAddr().(*net.UDPAddr), 400)
	passed, dropped, reordered := relay.counts()
	t.Logf("relay: %d sent, %d passed, %d dropped, %d reordered", sent, passed, dropped, reordered)
	if dropped == 0 || reordered == 0 {
		t.Fatalf("the relay impaired nothing: %d dropped, %d reordered", dropped, reordered)
	}
	within(t, ctx, 15*time.Second, "the page plays on and reports the loss", chromedp.Poll[bool](`(() => {
		const s = window.dsmgw.player.status;
		return s.stats.played >= 200 && s.quality.lost > 0 && /^Lost [1-9]/.test(document.getElementById('quality').textContent); })()`))
	q := within(t, ctx, 5*time.Second, "quality", chromedp.Evaluate[map[string]float64](`window.dsmgw.player.status.quality`))
	stats := within(t, ctx, 5*time.Second, "stats", chromedp.Evaluate[map[string]float64](`window.dsmgw.player.status.stats`))
	t.Logf("page: quality %v; stats %v", q, stats)

	// Clicks: the tone (amplitude 8000 at 440 Hz, 8 kHz) moves at most 2765 per sample;
	// a concealed or resumed frame bridged by the ramp adds at most 16000/16. Anything far
	// above is a click.
	frames := within(t, ctx, 5*time.Second, "played samples", chromedp.Evaluate[[]json.RawMessage](`window.played`))
	var s []int
	for _, f := range frames {
		var pcm []int
		if err := json.Unmarshal(f, &pcm); err != nil {
			t.Fatal(err)
		}
		s = append(s, pcm...)
	}
	if len(s) < 8000 {
		t.Fatalf("only %d samples played were recorded", len(s))
	}
	const limit = 4500
	worst, at := 0, 0
	for i := 1; i < len(s); i++ {
		if d := int(math.Abs(float64(s[i] - s[i-1]))); d > worst {
			worst, at = d, i
		}
	}
	t.Logf("largest step between played samples: %d at sample %d of %d (limit %d)", worst, at, len(s), limit)
	if worst > limit {
		t.Fatalf("a click in what the page played: a step of %d at sample %d", worst, at)
	}
}
