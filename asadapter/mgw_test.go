package asadapter

import (
	"encoding/binary"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pion/rtp"

	"dsmgw/internal/testpeer"
	"dsmgw/mediagw"
	"dsmgw/store"
)

// telephoneEvent is one decoded RFC 4733 packet.
type telephoneEvent struct {
	pkt      rtp.Packet
	event    uint8
	end      bool
	duration uint16
}

// readTelephoneEvents reads RTP from c until n events ended (three E-bit packets each),
// failing on anything that is not a telephone-event packet of payload type pt.
func readTelephoneEvents(t *testing.T, c *net.UDPConn, pt uint8, n int) []telephoneEvent {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	var out []telephoneEvent
	ends := 0
	buf := make([]byte, 1500)
	for ends < 3*n {
		m, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("read RTP after %d packets: %v", len(out), err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:m]); err != nil {
			t.Fatalf("packet %d does not decode as RTP: %v", len(out), err)
		}
		if p.PayloadType != pt || len(p.Payload) != 4 {
			t.Fatalf("packet %d: payload type %d with %d bytes, want telephone-event (%d) with 4",
				len(out), p.PayloadType, len(p.Payload), pt)
		}
		ev := telephoneEvent{pkt: p, event: p.Payload[0], end: p.Payload[1]&0x80 != 0,
			duration: binary.BigEndian.Uint16(p.Payload[2:])}
		if ev.end {
			ends++
		}
		out = append(out, ev)
	}
	return out
}

// TestDTMFThroughMediaGateway: the browser writes digits in the dtmf field; the adapter
// has the real media gateway send them as RFC 4733 events to the far end's RTP address,
// with the payload type of the answer (96, not the 101 we offered).
func TestDTMFThroughMediaGateway(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	path, _ := filepath.Abs("testdata/dtmf_answer.xml")
	s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path,
		Args: []string{"-m", "1", "-key", "rtpport", strconv.Itoa(far.LocalAddr().(*net.UDPAddr).Port)}})
	e.adapter("gw1", nil)
	p := "players/tones/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	e.browser(p, store.Set("dtmf", "1#"))
	e.waitField(p, "dtmf", "") // consumed once the gateway queued it

	evs := readTelephoneEvents(t, far, 96, 2)
	wantEvents := []uint8{1, 11} // RFC 4733 section 3.2: '1' is 1, '#' is 11
	digit := -1
	for i, ev := range evs {
		if i > 0 && ev.pkt.SequenceNumber != evs[i-1].pkt.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, ev.pkt.SequenceNumber, evs[i-1].pkt.SequenceNumber)
		}
		// An event starts with the first packet or after another's end packets.
		if i == 0 || evs[i-1].end && (!ev.end || ev.event != evs[i-1].event) {
			digit++
			if digit >= len(wantEvents) || ev.event != wantEvents[digit] {
				t.Fatalf("packet %d starts event %d, want the events %v in order", i, ev.event, wantEvents)
			}
			if !ev.pkt.Marker {
				t.Fatalf("packet %d: first packet of an event without the marker bit", i)
			}
			continue
		}
		prev := evs[i-1]
		if ev.event != prev.event || ev.pkt.Timestamp != prev.pkt.Timestamp || ev.pkt.Marker {
			t.Fatalf("packet %d: event %d ts %d marker %v continues event %d ts %d",
				i, ev.event, ev.pkt.Timestamp, ev.pkt.Marker, prev.event, prev.pkt.Timestamp)
		}
		if ev.duration < prev.duration || (prev.end && (!ev.end || ev.duration != prev.duration)) {
			t.Fatalf("packet %d: duration %d (end %v) after %d (end %v)", i, ev.duration, ev.end, prev.duration, prev.end)
		}
	}
	if digit != len(wantEvents)-1 {
		t.Fatalf("saw %d events, want %d", digit+1, len(wantEvents))
	}
	t.Logf("%d telephone-event packets for %d digits", len(evs), len(wantEvents))
	// Each event ends with its final duration three times with the E bit (RFC 4733
	// 2.5.1.4): 100 ms, the gateway's default, is 800 at 8 kHz.
	for i, ev := range evs {
		if ev.end && ev.duration != 800 {
			t.Fatalf("packet %d: final duration %d, want 800", i, ev.duration)
		}
	}
	last := evs[len(evs)-3:]
	for _, ev := range last {
		if !ev.end || ev.event != 11 {
			t.Fatalf("the last three packets are not the end of '#': %+v", last)
		}
	}

	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
	e.checkGone(p)
}

// TestMediaTimeoutEndsCall: a connected call over which no RTP flows either way is ended
// by the media gateway's timeout; the adapter sends BYE and marks the player failed.
func TestMediaTimeoutEndsCall(t *testing.T) {
	t.Parallel()
	e := newEnvMedia(t, func(c *mediagw.Config) {
		// Short, so the test does not wait 30 s; the sweep runs often enough to see it.
		c.MediaTimeout, c.SweepInterval = time.Second, 100*time.Millisecond
	})
	s := sippScenario(t, "answer.xml") // echoes RTP, but nobody sends any
	e.adapter("gw1", nil)
	p := "players/silent/audio"
	e.dial(p, sippTarget(s.Addr))
	e.waitField(p, "mgw_state", "connected")
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" || fl["sip_reason"] != "media timeout" || fl["mgw_url"] != "" {
		t.Fatalf("after the media timeout: %v", fl)
	}
	waitSipp(t, s) // the scenario ends with our BYE
	if !sippReceived(t, s, "BYE ") {
		t.Fatal("sipp received no BYE")
	}
	e.checkGone(p)
}
