package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"

	"dsmgw/store"
)

// page is a browser page without a browser: it writes what the page's player writes
// (webclient/player.js) through the store, as a browser's DSM client does, and carries
// the call's media as the page's media session does: a WebSocket to the media URL, a
// 20 ms PCMU frame every 20 ms, and the arrival time of every frame from the gateway.
// Like the page, it reattaches when the player shows a new media URL.
type page struct {
	st     *store.Store
	player string
	client string
	seq    int64
	callID string // the call's, once it is set up

	mu       sync.Mutex // guards the fields below
	ws       *websocket.Conn
	url      string
	arrivals []time.Time
	wg       sync.WaitGroup
}

func newPage(st *store.Store, n int) *page {
	c := fmt.Sprintf("bench%d", n)
	return &page{st: st, client: c, player: "players/" + c + "/audio"}
}

// commit writes ops to the player as the page's DSM client would.
func (p *page) commit(ctx context.Context, ops ...store.Op) error {
	p.seq++
	_, err := p.st.Commit(ctx, store.Commit{Obj: p.player, Client: "browser/" + p.client, Seq: p.seq, Base: -1, Ops: ops})
	return err
}

// dial places a call to uri (and lists the player in the players index).
func (p *page) dial(ctx context.Context, uri string) error {
	if err := p.commit(ctx, store.Set("service", "mmtel"), store.Set("remote", uri),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting")); err != nil {
		return err
	}
	_, err := p.st.Commit(ctx, store.Commit{Obj: "players", Client: "browser/" + p.client, Base: -1,
		Ops: []store.Op{store.Set(p.player, "audio")}})
	return err
}

// hangUp ends the call as the page's Hang up does.
func (p *page) hangUp(ctx context.Context) error {
	return p.commit(ctx, store.Set("player_state", "disconnected"))
}

// fields reads the player.
func (p *page) fields(ctx context.Context) (map[string]string, error) {
	r, err := p.st.Snapshot(ctx, p.player)
	if err != nil {
		return nil, err
	}
	return r.Fields, nil
}

// errFailed is a call the gateway marked failed.
var errFailed = errors.New("call failed")

// waitMedia waits until the player shows a connected call with a media URL other than
// old, and attaches to it. The player is read every 5 ms: a browser hears of the new URL
// from the DSM's feed within a few milliseconds, so the benchmark's gap is no shorter
// than a page's and at most 5 ms longer.
func (p *page) waitMedia(ctx context.Context, old string, d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		fl, err := p.fields(ctx)
		if err != nil {
			return "", err
		}
		if fl["mgw_state"] == "failed" || fl["player_state"] == "failed" {
			return "", fmt.Errorf("%w: %s %s", errFailed, fl["sip_status"], fl["sip_reason"])
		}
		if u := fl["mgw_url"]; u != "" && u != old && fl["mgw_state"] == "connected" {
			return u, p.attach(ctx, u)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no new media URL within %s (player %v)", d, fl)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// attach moves the page's media to url: the old WebSocket is closed, the new one sends
// a frame every 20 ms and records the frames it receives.
func (p *page) attach(ctx context.Context, url string) error {
	p.detach()
	ws, res, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		if res != nil {
			return fmt.Errorf("attach %s: %w (%s)", url, err, res.Status)
		}
		return fmt.Errorf("attach %s: %w", url, err)
	}
	p.mu.Lock()
	p.ws, p.url = ws, url
	p.mu.Unlock()
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			var pk rtp.Packet
			if pk.Unmarshal(b) == nil && pk.PayloadType == 0 {
				p.mu.Lock()
				p.arrivals = append(p.arrivals, time.Now())
				p.mu.Unlock()
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		payload := make([]byte, 160)
		for i := range payload {
			payload[i] = 0xff
		}
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(1); ; seq++ {
			<-tick.C
			pk := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq,
				Timestamp: uint32(seq) * 160, SSRC: 0x9a6e}, Payload: payload}
			b, _ := pk.Marshal()
			// A write to a gateway that is gone (or frozen) fails or blocks until the
			// WebSocket is closed by detach: both end this sender.
			_ = ws.SetWriteDeadline(time.Now().Add(time.Second))
			if ws.WriteMessage(websocket.BinaryMessage, b) != nil {
				p.mu.Lock()
				gone := p.ws != ws
				p.mu.Unlock()
				if gone {
					return
				}
			}
		}
	}()
	return nil
}

// detach closes the media WebSocket and waits for its goroutines.
func (p *page) detach() {
	p.mu.Lock()
	ws := p.ws
	p.ws = nil
	p.mu.Unlock()
	if ws != nil {
		ws.Close()
	}
	p.wg.Wait()
}

// frames returns the arrivals recorded so far.
func (p *page) frames() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.arrivals...)
}
