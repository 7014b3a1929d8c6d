package mediagw

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The far end receives RFC 4733 events inside the browser's stream: same SSRC, one
// unbroken sequence, each event's packets with its start timestamp, the marker on the
// first, growing durations, and the final duration three times with the E bit.
func TestDTMFPackets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, true)
	const ssrc, audio = 0x1234, 70
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 0; i < audio; i++ {
			_ = c.ws.WriteMessage(2, rtpPacket(0, uint16(60000+i), uint32(1000+160*i), ssrc, 160))
			if i == 10 {
				if err := e.cl.SendDTMF(context.Background(), c.id, DTMFRequest{Digits: "1#", DurationMS: 100, GapMS: 60}); err != nil {
					t.Errorf("send dtmf: %v", err)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var pkts []rtp.Packet
	buf := make([]byte, 2000)
	quiet := 0
	for quiet < 3 {
		// The far end reads until the browser stopped and the stream has been quiet
		// for a few read periods (a way to know it is over, not a timing check).
		_ = p.rtp.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := p.rtp.ReadFromUDP(buf)
		if err != nil {
			select {
			case <-sent:
				quiet++
			default:
			}
			continue
		}
		var pk rtp.Packet
		if err := pk.Unmarshal(append([]byte(nil), buf[:n]...)); err != nil {
			t.Fatalf("far end got an undecodable packet: %v", err)
		}
		pkts = append(pkts, pk)
	}
	<-sent

	type event struct {
		code  uint8
		ts    uint32
		pkts  []rtp.Packet
		durs  []uint16
		ends  int
		first int
	}
	var events []*event
	var lastAudioTS uint32
	for i, pk := range pkts {
		if pk.SSRC != ssrc {
			t.Fatalf("packet %d ssrc %#x, want the browser's %#x", i, pk.SSRC, ssrc)
		}
		if i > 0 && pk.SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("sequence broken at %d: %d after %d", i, pk.SequenceNumber, pkts[i-1].SequenceNumber)
		}
		if pk.PayloadType == 0 {
			if pk.Marker {
				t.Errorf("audio packet %d got a marker", i)
			}
			lastAudioTS = pk.Timestamp
			continue
		}
		if pk.PayloadType != 101 || len(pk.Payload) != 4 {
			t.Fatalf("packet %d: pt %d payload %d bytes", i, pk.PayloadType, len(pk.Payload))
		}
		code, endBit, vol := pk.Payload[0], pk.Payload[1]&0x80 != 0, pk.Payload[1]&0x3f
		dur := binary.BigEndian.Uint16(pk.Payload[2:])
		if len(events) == 0 || events[len(events)-1].ts != pk.Timestamp {
			if pk.Timestamp < lastAudioTS {
				t.Errorf("event timestamp %d before the last audio timestamp %d", pk.Timestamp, lastAudioTS)
			}
			events = append(events, &event{code: code, ts: pk.Timestamp, first: i})
		}
		ev := events[len(events)-1]
		if code != ev.code || vol != dtmfVolume {
			t.Errorf("packet %d: code %d volume %d", i, code, vol)
		}
		if pk.Marker != (i == ev.first) {
			t.Errorf("packet %d: marker %v, want it on the first packet of the event only", i, pk.Marker)
		}
		if endBit {
			ev.ends++
		} else if ev.ends > 0 {
			t.Errorf("packet %d: a non-end packet after the end", i)
		}
		ev.durs = append(ev.durs, dur)
		ev.pkts = append(ev.pkts, pk)
	}
	if len(events) != 2 || events[0].code != 1 || events[1].code != 11 {
		t.Fatalf("events %+v, want 1 then #", events)
	}
	for _, ev := range events {
		if ev.ends != dtmfEndRepeats {
			t.Errorf("event %d: %d end packets, want 3", ev.code, ev.ends)
		}
		// 100 ms at 8 kHz = 800: 160, 320, 480, 640, then 800 three times.
		want := []uint16{160, 320, 480, 640, 800, 800, 800}
		if len(ev.durs) != len(want) {
			t.Errorf("event %d durations %v, want %v", ev.code, ev.durs, want)
			continue
		}
		for i := range want {
			if ev.durs[i] != want[i] {
				t.Errorf("event %d durations %v, want %v", ev.code, ev.durs, want)
				break
			}
		}
	}
	if events[1].ts < events[0].ts+800 {
		t.Errorf("second event starts at %d, inside the first (%d+800)", events[1].ts, events[0].ts)
	}
	// Counters trail delivery by a moment: settle on the packets the far end saw.
	eventually(t, "counted", func() bool {
		cs := mustGet(t, e, c.id).Counters
		return int(cs.WSToUDP.RTPPackets+cs.DTMFPackets) == len(pkts)
	})
	cs := mustGet(t, e, c.id).Counters
	if cs.DTMFPackets != 14 {
		t.Errorf("dtmf packets %d, want 14", cs.DTMFPackets)
	}
	if int(cs.WSToUDP.RTPPackets)+int(cs.Drops[DropDTMF]) != audio {
		t.Errorf("audio relayed %d + dropped during dtmf %d != %d sent", cs.WSToUDP.RTPPackets, cs.Drops[DropDTMF], audio)
	}
	if len(pkts) != int(cs.WSToUDP.RTPPackets)+14 {
		t.Errorf("far end got %d packets, gateway says %d audio + 14 dtmf", len(pkts), cs.WSToUDP.RTPPackets)
	}
}

// Without browser audio, events still decode: a stream of their own.
func TestDTMFWithoutAudio(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	p := newPeer(t)
	c := e.newCall(t, p, false)
	if err := e.cl.SendDTMF(context.Background(), c.id, DTMFRequest{Digits: "*", DurationMS: 40}); err != nil {
		t.Fatal(err)
	}
	var got []rtp.Packet
	for len(got) < 4 {
		var pk rtp.Packet
		if err := pk.Unmarshal(recvUDP(t, p.rtp)); err != nil {
			t.Fatal(err)
		}
		got = append(got, pk)
	}
	// 40 ms = 320: one packet of 160, then 320 three times with E.
	if !got[0].Marker || got[0].Payload[0] != 10 || got[3].Payload[1]&0x80 == 0 ||
		binary.BigEndian.Uint16(got[3].Payload[2:]) != 320 || got[3].SequenceNumber != got[0].SequenceNumber+3 ||
		got[3].Timestamp != got[0].Timestamp || got[3].SSRC != got[0].SSRC {
		t.Errorf("packets %+v", got)
	}
}
