package imsdemo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"dsmgw/imsdemo/mixer"
	"dsmgw/internal/testpeer"
)

// startServer runs a conference server on loopback for one test; it stops (draining)
// when the test ends unless the test stopped it.
func startServer(t testing.TB, cfg Config) (*Server, context.CancelFunc) {
	t.Helper()
	if cfg.ListenUDP == "" {
		cfg.ListenUDP = "127.0.0.1:0"
	}
	if cfg.ListenTCP == "" {
		cfg.ListenTCP = "127.0.0.1:0"
	}
	if cfg.RTPBindAddr == "" {
		cfg.RTPBindAddr = "127.0.0.1"
	}
	if cfg.RTPPortMin == 0 {
		cfg.RTPPortMin, cfg.RTPPortMax = 34000, 39999
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 2 * time.Second // the phones may be gone when the test ends
	}
	if cfg.Domain == "" {
		cfg.Domain = "conf.test.invalid"
	}
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	s, err := New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, cancel
}

// hears checks the tones in what a phone heard: each of want loud, each of not silent.
// The tones are sent at 6000 (Go phones) and about 13000 (baresip); on a loaded machine
// a sender's gaps lower its level, so loud is anything above 1000, while a tone that
// should not be there stays below 300 (a participant's own tone leaks at about 30, its
// G.711 quantisation noise).
func hears(t *testing.T, who string, s []int16, want, not []float64) {
	t.Helper()
	var levels []string
	for _, f := range append(append([]float64(nil), want...), not...) {
		levels = append(levels, fmt.Sprintf("%v Hz %.0f", f, testpeer.ToneLevel(s, mixer.SampleRate, f)))
	}
	t.Logf("%s hears: %s", who, strings.Join(levels, ", "))
	for _, f := range want {
		if l := testpeer.ToneLevel(s, mixer.SampleRate, f); l < 1000 {
			t.Errorf("%s hears %v Hz at %.0f, want it loud", who, f, l)
		}
	}
	for _, f := range not {
		if l := testpeer.ToneLevel(s, mixer.SampleRate, f); l > 300 {
			t.Errorf("%s hears %v Hz at %.0f, want nothing", who, f, l)
		}
	}
}

// Three phones in one room, two codecs: each hears the two others and not itself; a
// subscriber sees them join, hold, resume and leave, through the gateway's own parser.
func TestConferenceThreePhones(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{})
	room := "sip:r1@" + s.Addr("udp")
	sub := newSubscriber(t, "watcher", "")
	if code := sub.subscribe(room, 600); code != 200 {
		t.Fatalf("SUBSCRIBE: %d", code)
	}
	first := sub.next()
	if first.State != asadapterFull || first.Version != 1 || len(first.Users.List) != 0 {
		t.Fatalf("first NOTIFY: %+v", first)
	}
	phones := []*testPhone{
		newPhone(t, "alice", mixer.PCMU, 440, ""),
		newPhone(t, "bob", mixer.PCMA, 1000, ""),
		newPhone(t, "carol", mixer.PCMU, 1700, ""),
	}
	want := map[string]string{}
	for _, p := range phones {
		if code := p.call(room); code != 200 {
			t.Fatalf("%s: %d", p.name, code)
		}
		want[p.aor()] = who(p.display, "connected")
		sub.waitFor(want)
	}
	for i, p := range phones {
		var others, self []float64
		for j, q := range phones {
			if i == j {
				self = append(self, q.freq)
			} else {
				others = append(others, q.freq)
			}
		}
		heard := p.listen(2 * time.Second)
		hears(t, p.name, heard, others, self)
		for _, h := range p.packets() {
			if h.PayloadType != p.codec.PayloadType() {
				t.Fatalf("%s got payload type %d, negotiated %v", p.name, h.PayloadType, p.codec)
			}
		}
	}

	// carol holds: the others stop hearing her; she gets nothing.
	carol := phones[2]
	carol.reinvite(SendOnly)
	want[carol.aor()] = who(carol.display, "on-hold")
	sub.waitFor(want)
	hears(t, "alice while carol holds", phones[0].listen(time.Second), []float64{1000}, []float64{440, 1700})
	carol.reinvite(SendRecv)
	want[carol.aor()] = who(carol.display, "connected")
	sub.waitFor(want)
	hears(t, "alice after carol resumed", phones[0].listen(time.Second), []float64{1000, 1700}, []float64{440})

	// bob leaves: disconnected for the others, and not heard any more.
	phones[1].hangup()
	want[phones[1].aor()] = who(phones[1].display, "disconnected")
	sub.waitFor(want)
	hears(t, "alice after bob left", phones[0].listen(time.Second), []float64{1700}, []float64{440, 1000})

	for i := 1; i < len(sub.docs); i++ {
		if sub.docs[i].Version != sub.docs[i-1].Version+1 || sub.docs[i].State != "partial" {
			t.Fatalf("NOTIFY %d: version %d after %d, state %s", i, sub.docs[i].Version, sub.docs[i-1].Version, sub.docs[i].State)
		}
	}
}

const asadapterFull = "full"
