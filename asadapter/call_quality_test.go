package asadapter

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/mediagw"
	"dsmgw/store"
)

// TestMediaQualityWritten: during a connected call with a page attached to its media
// (a WebSocket of the test's), the adapter writes the media gateway's counters of the
// call's termination to the player (media_quality). The far
// end's RTP comes from a socket of the test's own that leaves out every tenth packet and
// sends a few truncated ones: the field shows the loss and the drops.
func TestMediaQualityWritten(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.adapter("gw1", nil)
	far, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	s := sippScenario(t, "answer_farport.xml", "-key", "farport", strconv.Itoa(far.LocalAddr().(*net.UDPAddr).Port))
	p := "players/mq1/audio"
	e.dial(p, sippTarget(s.Addr))
	fl := e.waitField(p, "mgw_state", "connected")
	// The page's media WebSocket: the counters are written only while one is attached.
	ws, _, err := websocket.DefaultDialer.Dial(fl["mgw_url"], nil)
	if err != nil {
		t.Fatalf("attach to %s: %v", fl["mgw_url"], err)
	}
	defer ws.Close()
	go func() { // read what the gateway relays, so its send queue never fills
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); !e.onlyTermination().WSAttached; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the media WebSocket never attached")
		}
	}
	term := e.onlyTermination()
	dst := &net.UDPAddr{IP: net.ParseIP(term.Address), Port: term.RTPPort}

	const sent, every = 200, 10 // packets numbered; every tenth is "lost" on the way
	pkt := make([]byte, 12+160)
	for i := range sent {
		if i%every == every-1 {
			continue
		}
		pkt[0], pkt[1] = 0x80, 0 // RTP version 2, PCMU
		binary.BigEndian.PutUint16(pkt[2:], uint16(1000+i))
		binary.BigEndian.PutUint32(pkt[4:], uint32(i*160))
		binary.BigEndian.PutUint32(pkt[8:], 0x5eed)
		if _, err := far.WriteToUDP(pkt, dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // paced a little: a burst could overflow a socket buffer
	}
	for range 3 { // too short to be RTP: dropped as truncated
		if _, err := far.WriteToUDP([]byte{0x80, 0, 1}, dst); err != nil {
			t.Fatal(err)
		}
	}
	var q MediaQuality
	e.waitFieldFunc(p, "media quality with the loss and the drops", func(fl map[string]string) bool {
		q = MediaQuality{}
		return json.Unmarshal([]byte(fl["media_quality"]), &q) == nil && q.InLost >= sent/every-1 && q.Drops >= 3
	})
	t.Logf("media_quality %+v", q)
	// The last packet sent is number 198 (199 is left out), so the gateway expects 199
	// and misses 19 of them; the 3 truncated packets are dropped.
	if q.InLost != sent/every-1 || q.InExpected != sent-1 || q.Drops != 3 {
		t.Fatalf("media_quality %+v: want 19 of 199 lost and 3 drops", q)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s)
}

// TestQualityOf: the counters summed up (drops on purpose left out), the far end's
// report only once it sent one.
func TestQualityOf(t *testing.T) {
	q := qualityOf(mediagw.Counters{Drops: map[string]uint64{"truncated": 2, "foreign_source": 1, "held": 50},
		FromUDP: &mediagw.ReceiveStats{Received: 90, Expected: 100, Lost: 10, JitterMS: 3.14159}})
	if q.InLost != 10 || q.InExpected != 100 || q.InJitterMS != 3.1 || q.Drops != 3 || q.OutLost != nil || q.OutJitterMS != nil {
		t.Fatalf("%+v", q)
	}
	q = qualityOf(mediagw.Counters{FromUDP: &mediagw.ReceiveStats{Lost: -2}, RemoteReport: &mediagw.RemoteReport{CumulativeLost: 4, JitterMS: 2.06}})
	if q.InLost != 0 || q.OutLost == nil || *q.OutLost != 4 || *q.OutJitterMS != 2.1 {
		t.Fatalf("%+v", q)
	}
}
