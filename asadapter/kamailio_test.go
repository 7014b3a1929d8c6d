package asadapter

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// waitRegistered waits until baresip reports its account registered.
func waitRegistered(t *testing.T, b *testpeer.Baresip) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
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

// mediaClient plays the browser's media player: it attaches to the media URL, sends
// PCMU silence every 20 ms and counts the RTP packets it receives.
type mediaClient struct {
	ws       *websocket.Conn
	received chan int
	stop     chan struct{}
}

func attachMedia(t *testing.T, url string) *mediaClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("attach %s: %v", url, err)
	}
	m := &mediaClient{ws: ws, received: make(chan int, 1), stop: make(chan struct{})}
	go func() {
		n := 0
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var p rtp.Packet
			if p.Unmarshal(b) == nil && p.PayloadType == 0 {
				n++
				select {
				case <-m.received:
				default:
				}
				m.received <- n
			}
		}
	}()
	go func() {
		payload := make([]byte, 160)
		for i := range payload {
			payload[i] = 0xff
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			select {
			case <-m.stop:
				return
			case <-tick.C:
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq,
				Timestamp: uint32(seq) * 160, SSRC: 0x1234}, Payload: payload}
			b, _ := p.Marshal()
			if ws.WriteMessage(websocket.BinaryMessage, b) != nil {
				return
			}
		}
	}()
	t.Cleanup(m.close)
	return m
}

func (m *mediaClient) close() {
	select {
	case <-m.stop:
	default:
		close(m.stop)
		m.ws.Close()
	}
}

// waitReceived waits until at least n RTP packets arrived from the far end.
func (m *mediaClient) waitReceived(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case got := <-m.received:
			if got >= n {
				return
			}
		case <-deadline:
			t.Fatalf("fewer than %d RTP packets from the far end", n)
		}
	}
}

// waitSent waits until the media gateway forwarded n of our packets toward the phone.
func (e *env) waitSent(t *testing.T, url string, n int) {
	t.Helper()
	id := url[strings.LastIndex(url, "/")+1:]
	id, _, _ = strings.Cut(id, "?")
	deadline := time.Now().Add(waitFor)
	for {
		term, err := e.mgwc.Get(e.ctx, id)
		if err == nil && term.Counters.WSToUDP.RTPPackets >= uint64(n) && term.Counters.Drops["send_error"] == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("media gateway forwarded too little toward the phone: %+v %v", term, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRecording waits until baresip wrote received audio to a WAV file.
func waitRecording(t *testing.T, b *testpeer.Baresip) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		files, _ := filepath.Glob(filepath.Join(b.Dir, "*.wav"))
		for _, f := range files {
			if st, err := os.Stat(f); err == nil && st.Size() > 8000 && strings.Contains(f, "dec") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip recorded no received audio: %v", files)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCallThroughKamailioToBaresip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k := testpeer.StartKamailio(t)
	phone := testpeer.StartBaresip(t, testpeer.BaresipOptions{User: "bob", Registrar: k.Addr})
	waitRegistered(t, phone)
	e.adapter("gw1", func(c *Config) {
		c.OutboundProxy = k.URI("udp")
		c.AuthUser, c.AuthPassword = "dsmgw", testpeer.KamailioPassword
	})

	// Call 1: the browser hangs up.
	p := "players/web1/audio"
	e.dial(p, "sip:bob@127.0.0.1")
	fl := e.waitField(p, "mgw_state", "connected")
	m := attachMedia(t, fl["mgw_url"])
	m.waitReceived(t, 25) // half a second of baresip's tone
	e.waitSent(t, fl["mgw_url"], 25)
	waitRecording(t, phone)
	m.close()
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	e.waitNoTerminations()

	// Call 2: the phone hangs up.
	p = "players/web2/audio"
	e.dial(p, "sip:bob@127.0.0.1")
	fl = e.waitField(p, "mgw_state", "connected")
	m = attachMedia(t, fl["mgw_url"])
	m.waitReceived(t, 10)
	if out, err := phone.Command("hangup", ""); err != nil {
		t.Fatalf("baresip hangup: %q %v", out, err)
	}
	fl = e.waitField(p, "player_state", "disconnected")
	if fl["mgw_state"] != "disconnected" {
		t.Fatalf("after the phone hung up: %v", fl)
	}
	e.waitNoTerminations()
}
