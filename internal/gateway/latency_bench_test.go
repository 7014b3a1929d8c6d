package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/imsdemo"
	"dsmgw/internal/testpeer"
)

// clickTrain is the fake microphone of the latency benchmark: a 10 ms burst of 1 kHz at
// three quarters of full scale every 500 ms (2 s, looped), silence in between, so that
// each click's onset is found after 100 ms of quiet at every stage.
func clickTrain() []int16 {
	const rate = 48000
	s := make([]int16, 2*rate)
	for c := 0; c < 4; c++ {
		start := c * rate / 2
		for i := 0; i < rate/100; i++ {
			s[start+i] = int16(24000 * math.Sin(2*math.Pi*1000*float64(i)/rate))
		}
	}
	return s
}

// probe is a click seen by the page's worklet: captured (mic), arrived in a frame from
// the network (arrive) or played (out), on the AudioContext's clock (seconds).
type probe struct {
	At string  `json:"at"`
	T  float64 `json:"t"`
}

// BenchmarkMouthToEar measures mouth-to-ear latency in Chromium through the echo service
// of the demo IMS (Kamailio, the demo conference server in process, one gateway): the
// fake microphone plays clicks; the page's worklet notes each click's onset when it is
// captured, when its frame comes back from the network and when it is played, on the
// AudioContext's clock. Mouth-to-ear is played minus captured (the browser's own input
// and output device latency excluded, as the fake devices have none to speak of); the
// jitter buffer's share is played minus arrived. It measures the playout buffer fixed at
// 60 ms and adaptive in turn, twice each over 20 clicks (10 s), and reports the mean p50 of
// each, their ratio, and the last adaptive run's p90 and jitter buffer share; nothing is
// asserted.
//
//	go test -run X -bench MouthToEar -benchtime 1x ./internal/gateway
func BenchmarkMouthToEar(b *testing.B) {
	r := testpeer.StartRedis(b, testpeer.RedisOptions{NotifyKeyspaceEvents: "Khg"})
	cfg := testConfig(b, r.Addr)
	log := slog.New(slog.DiscardHandler)
	rtp := 21000 + 2*rand.IntN(2500)
	confSrv, err := imsdemo.New(imsdemo.Config{ListenUDP: "127.0.0.1:0", ListenTCP: "127.0.0.1:0",
		RTPBindAddr: "127.0.0.1", RTPPortMin: rtp, RTPPortMax: rtp + 199, Domain: confDomain,
		DrainTimeout: 2 * time.Second}, log)
	if err != nil {
		b.Fatal(err)
	}
	cctx, stopConf := context.WithCancel(context.Background())
	confDone := make(chan error, 1)
	go func() { confDone <- confSrv.Run(cctx) }()
	b.Cleanup(func() { stopConf(); <-confDone })
	k := testpeer.StartKamailioWith(b, testpeer.KamailioOptions{ChallengeFrom: cfg.SIPListenUDP,
		ConfDomain: confDomain, ConfServer: "sip:" + confSrv.Addr("udp")})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	base := "http://" + l.Addr().String()
	cfg.MGWPublicWSURL = "ws://" + l.Addr().String()
	cfg.SIPOutboundProxy, cfg.SIPDomain, cfg.UsersConfDom = k.URI("udp"), "dsmgw.test", confDomain
	cfg.SIPAuthUser, cfg.SIPAuthPassword = "dsmgw", testpeer.KamailioPassword
	serveApp(b, cfg, log, l)

	// Two playout buffers measured in turn, in the same sitting: fixed at 3 frames
	// (60 ms, the old default) and adaptive (the default), each in a Chromium of its own
	// calling the echo service for 20 clicks, twice each in alternation (fixed,
	// adaptive, fixed, adaptive), one page at a time: pages measured at once disturb each
	// other (the one started first saw two to three times the underruns), and the
	// alternation spreads the machine's other work over both.
	var fixed, adaptive []float64
	var last latency
	b.ResetTimer()
	for round := range 4 {
		name, query := "fixed60", "&jitter=3"
		if round%2 == 1 {
			name, query = "adaptive", ""
		}
		p := startEchoCall(b, base, name, query)
		run(b, p, 60*time.Second, "20 clicks back", chromedp.Poll[bool](`window.probes.filter((p) => p.at === 'out').length >= 20`))
		l := echoLatency(b, p)
		run(b, p, 10*time.Second, "hang up", chromedp.Evaluate[bool](`document.getElementById('hangup').click(); true`))
		run(b, p, 30*time.Second, "call ended", chromedp.Poll[bool](`window.dsmgw.player.status.playerState === 'disconnected'`))
		run(b, p, 10*time.Second, "leave", chromedp.Navigate("about:blank"))
		if round%2 == 1 {
			adaptive, last = append(adaptive, l.p50), l
		} else {
			fixed = append(fixed, l.p50)
		}
	}
	b.StopTimer()
	mean := func(v []float64) float64 { return (v[0] + v[1]) / 2 }
	b.ReportMetric(mean(fixed), "fixed-m2e-p50-ms")
	b.ReportMetric(mean(adaptive), "m2e-p50-ms")
	b.ReportMetric(last.p90, "m2e-p90-ms")
	b.ReportMetric(last.buf, "jitterbuf-p50-ms")
	b.ReportMetric(mean(adaptive)/mean(fixed), "m2e-p50-adaptive/fixed")
	b.ReportMetric(0, "ns/op")
	b.Logf("mouth-to-ear p50: fixed %.1f and %.1f ms, adaptive %.1f and %.1f ms; adaptive/fixed %.2f",
		fixed[0], fixed[1], adaptive[0], adaptive[1], mean(adaptive)/mean(fixed))
}

// startEchoCall opens the page with the click train as its microphone (query: more of
// the page's query string) and calls the echo service; it returns once the media flows,
// with the page collecting the worklet's probes.
func startEchoCall(b *testing.B, base, name, query string) *confPage {
	b.Helper()
	p := &confPage{user: name, ctx: testpeer.StartChromium(b, testpeer.ChromiumOptions{Mic: clickTrain()})}
	run(b, p, 30*time.Second, "load the page", chromedp.Navigate(base+"/?processing=off&probe=on"+query))
	run(b, p, 30*time.Second, "page ready", chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	run(b, p, 5*time.Second, "probe", chromedp.Evaluate[bool](`window.probes = []; window.dsmgw.player.probe = (p) => window.probes.push({ at: p.at, t: p.t }); true`))
	run(b, p, 5*time.Second, "dial the echo service", chromedp.Steps(
		chromedp.SetValue(chromedp.CSS(`#remote`), "sip:echo@"+confDomain),
		chromedp.Click(chromedp.CSS(`#call`)),
	))
	run(b, p, 30*time.Second, "call connected", chromedp.Poll[bool](`window.dsmgw.player.status.media === 'connected'`))
	run(b, p, 5*time.Second, "probes from now on", chromedp.Evaluate[bool](`window.probes = []; true`))
	return p
}

// latency is what one page measured: mouth-to-ear p50 and p90, and the jitter buffer's
// share (arrival to playout) p50, in ms.
type latency struct{ p50, p90, buf float64 }

// echoLatency pairs the page's probes click by click and logs and returns the figures.
func echoLatency(b *testing.B, p *confPage) latency {
	b.Helper()
	probes := run(b, p, 5*time.Second, "probes", chromedp.Evaluate[[]json.RawMessage](`window.probes`))
	var mic, arrive float64 = -1, -1
	var m2e, buf []float64
	for _, raw := range probes {
		var pr probe
		if err := json.Unmarshal(raw, &pr); err != nil {
			b.Fatal(err)
		}
		switch pr.At {
		case "mic":
			mic = pr.T
		case "arrive":
			arrive = pr.T
		case "out":
			// A click comes back well within the 500 ms between clicks; anything else
			// paired a click with the wrong one and is left out.
			if mic >= 0 && pr.T-mic > 0 && pr.T-mic < 0.45 {
				m2e = append(m2e, (pr.T-mic)*1000)
			}
			if arrive >= 0 && pr.T-arrive >= 0 && pr.T-arrive < 0.45 {
				buf = append(buf, (pr.T-arrive)*1000)
			}
		}
	}
	if len(m2e) < 10 || len(buf) == 0 {
		b.Fatalf("%s: only %d clicks paired (%d probes)", p.user, len(m2e), len(probes))
	}
	q := func(v []float64, f float64) float64 {
		s := slices.Clone(v)
		slices.Sort(s)
		return s[int(f*float64(len(s)-1))]
	}
	l := latency{p50: q(m2e, 0.5), p90: q(m2e, 0.9), buf: q(buf, 0.5)}
	stats := run(b, p, 5*time.Second, "stats", chromedp.Evaluate[map[string]any](`window.dsmgw.player.status.stats`))
	b.Logf("%s: worklet %v", p.user, stats)
	b.Logf("%s: mouth-to-ear over %d clicks: p50 %.1f ms, p90 %.1f ms; from arrival to playout (jitter buffer and resampling) p50 %.1f ms",
		p.user, len(m2e), l.p50, l.p90, l.buf)
	return l
}
