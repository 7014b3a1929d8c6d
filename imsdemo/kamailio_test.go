package imsdemo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dsmgw/imsdemo/mixer"
	"dsmgw/internal/testpeer"
)

// confDomain is the conference domain of deploy/kamailio.cfg.
const confDomain = "conf.sip.dsmgw.test"

// Through the shipped Kamailio configuration: baresip (440 Hz, registered at the CSCF)
// and two Go phones (1000 Hz A-law, 1700 Hz µ-law) join sip:r1@conf.sip.dsmgw.test; each
// hears the two others and not itself (baresip's recording too); a subscriber through
// the CSCF sees the three, then baresip leave. The echo service answers at
// sip:echo@sip.dsmgw.test.
func TestConferenceThroughKamailio(t *testing.T) {
	t.Parallel()
	s, _ := startServer(t, Config{Domain: confDomain})
	k := testpeer.StartDeployKamailio(t, testpeer.DeployKamailioOptions{ConfServer: "sip:" + s.Addr("udp")})
	room := "sip:r1@" + confDomain

	sub := newSubscriber(t, "watcher", k.Addr)
	if code := sub.subscribe(room, 600); code != 200 {
		t.Fatalf("SUBSCRIBE through the CSCF: %d", code)
	}
	sub.next()

	phone := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "carol", Registrar: k.Addr, ToneHz: 440})
	waitRegistered(t, phone)
	if out, err := phone.Command("dial", room); err != nil {
		t.Fatalf("baresip dial: %q %v", out, err)
	}
	carol := "sip:carol@" + k.Addr
	want := map[string]string{carol: who("", "connected")}
	sub.waitFor(want)

	alice := newPhone(t, "alice", mixer.PCMA, 1000, k.Addr)
	bob := newPhone(t, "bob", mixer.PCMU, 1700, k.Addr)
	for _, p := range []*testPhone{alice, bob} {
		if code := p.call(room); code != 200 {
			t.Fatalf("%s through the CSCF: %d", p.name, code)
		}
		want[p.aor()] = who(p.display, "connected")
	}
	sub.waitFor(want)

	hears(t, "alice", alice.listen(2*time.Second), []float64{440, 1700}, []float64{1000})
	hears(t, "bob", bob.listen(2*time.Second), []float64{440, 1000}, []float64{1700})
	rec := recording(t, phone, 2*time.Second)
	hears(t, "baresip", rec, []float64{1000, 1700}, []float64{440})

	if out, err := phone.Command("hangup", ""); err != nil {
		t.Fatalf("baresip hangup: %q %v", out, err)
	}
	want[carol] = who("", "disconnected")
	sub.waitFor(want)
	hears(t, "alice after carol left", alice.listen(time.Second), []float64{1700}, []float64{440, 1000})

	echo := newPhone(t, "dave", mixer.PCMU, 600, k.Addr)
	if code := echo.call("sip:echo@sip.dsmgw.test"); code != 200 {
		t.Fatalf("echo through the CSCF: %d", code)
	}
	hears(t, "dave at the echo", echo.listen(time.Second), []float64{600}, nil)
	echo.hangup()
	alice.hangup()
	bob.hangup()
}

func waitRegistered(t *testing.T, b *testpeer.Baresip) {
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

// recording waits until baresip's recording of what it receives holds d of audio past
// what it held when called, and returns that new audio.
func recording(t *testing.T, b *testpeer.Baresip, d time.Duration) []int16 {
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
			s = s[len(start):]
			if rate != mixer.SampleRate {
				t.Fatalf("baresip records at %d Hz", rate)
			}
			return s
		}
		if time.Now().After(deadline) {
			files, _ := filepath.Glob(filepath.Join(b.Dir, "*dec*.wav"))
			for _, f := range files {
				head, _ := os.ReadFile(f)
				_, _, err := testpeer.ReadWAV(f)
				t.Logf("%s: %d bytes, %v, head % x", f, len(head), err, head[:min(64, len(head))])
			}
			t.Fatalf("baresip recorded %d samples at %d Hz", len(s), rate)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
