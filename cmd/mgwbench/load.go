package main

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// G.711 at 20 ms: 160 payload bytes + 12 header = 172 bytes, 50 packets/s each way.
const (
	payloadSize = 160
	packetSize  = 12 + payloadSize
	interval    = 20 * time.Millisecond
	// phases spreads the calls' packets over the 20 ms interval (1 ms apart) instead of
	// sending every call's packet in one burst, as independent phones would.
	phases = 20
)

// Directions of a packet.
const (
	dirAToB = 0 // gateway run: browser (WebSocket) to far end (UDP)
	dirBToA = 1 // gateway run: far end to browser
)

// endpoint is one side of a call in the tool: a UDP socket or a WebSocket client.
type endpoint interface {
	send(b []byte) error
	// recvLoop reads packets and hands each to fn until the endpoint closes.
	recvLoop(fn func([]byte))
	close()
}

type udpEnd struct {
	conn *net.UDPConn
	dst  *net.UDPAddr
}

func (u *udpEnd) send(b []byte) error { _, err := u.conn.WriteToUDP(b, u.dst); return err }
func (u *udpEnd) recvLoop(fn func([]byte)) {
	buf := make([]byte, 2048)
	for {
		n, _, err := u.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		fn(buf[:n])
	}
}
func (u *udpEnd) close() { u.conn.Close() }

type wsEnd struct{ conn *websocket.Conn }

func (w *wsEnd) send(b []byte) error { return w.conn.WriteMessage(websocket.BinaryMessage, b) }
func (w *wsEnd) recvLoop(fn func([]byte)) {
	// A reused buffer instead of ReadMessage's allocation per message keeps the tool's
	// own cost (and GC) off the measurement.
	buf := make([]byte, 2048)
	for {
		_, r, err := w.conn.NextReader()
		if err != nil {
			return
		}
		n, err := io.ReadFull(r, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return
		}
		fn(buf[:n])
	}
}
func (w *wsEnd) close() { w.conn.Close() }

// benchCall is one call: two endpoints and per-direction sequence state.
type benchCall struct {
	idx  uint32
	a, b endpoint
	seq  [2]uint16
	ts   [2]uint32
}

// stats collects what the receivers saw; counters are atomics because every call's
// receivers update them.
type stats struct {
	sent     [2]atomic.Uint64 // in the measurement window
	recv     [2]atomic.Uint64 // sent in the window and received
	recvAll  atomic.Uint64
	sendErrs atomic.Uint64
	lat      [2]*histogram
}

// histogram counts latencies in 5 µs buckets up to 1 s (beyond: the last bucket).
type histogram struct{ b []atomic.Uint64 }

const bucketWidth = 5 * time.Microsecond

func newHistogram() *histogram { return &histogram{b: make([]atomic.Uint64, 200001)} }

func (h *histogram) add(d time.Duration) {
	i := int(d / bucketWidth)
	if i < 0 {
		i = 0
	}
	if i >= len(h.b) {
		i = len(h.b) - 1
	}
	h.b[i].Add(1)
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total uint64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var acc uint64
	for i := range h.b {
		acc += h.b[i].Load()
		if acc >= want {
			return time.Duration(i+1) * bucketWidth
		}
	}
	return time.Duration(len(h.b)) * bucketWidth
}

func merge(hs ...*histogram) *histogram {
	out := newHistogram()
	for _, h := range hs {
		for i := range h.b {
			out.b[i].Add(h.b[i].Load())
		}
	}
	return out
}

// packet layout after the 12-byte RTP header: send time (unix ns), call index,
// direction, window flag.
func fill(b []byte, c *benchCall, dir int, window bool) {
	b[0], b[1] = 0x80, 0 // V=2, PCMU
	binary.BigEndian.PutUint16(b[2:], c.seq[dir])
	binary.BigEndian.PutUint32(b[4:], c.ts[dir])
	binary.BigEndian.PutUint32(b[8:], c.idx<<1|uint32(dir))
	c.seq[dir]++
	c.ts[dir] += 160
	p := b[12:]
	binary.BigEndian.PutUint64(p[0:], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint32(p[8:], c.idx)
	p[12] = byte(dir)
	p[13] = 0
	if window {
		p[13] = 1
	}
}

func (s *stats) onPacket(b []byte) {
	s.recvAll.Add(1)
	if len(b) != packetSize {
		return
	}
	p := b[12:]
	if p[13] != 1 {
		return
	}
	dir := int(p[12] & 1)
	sent := int64(binary.BigEndian.Uint64(p[0:]))
	s.recv[dir].Add(1)
	s.lat[dir].add(time.Duration(time.Now().UnixNano() - sent))
}

// drive sends packets for all calls at 50 pps per direction until stop, counting those
// sent while window() is true. Calls are split among senders; each call belongs to one
// sender, so no endpoint is written by two goroutines.
func drive(calls []*benchCall, senders int, st *stats, window func() bool, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		var mine [phases][]*benchCall
		for i, c := range calls {
			if i%senders == s {
				mine[i%phases] = append(mine[i%phases], c)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, packetSize)
			start := time.Now()
			for tick := 0; ; tick++ {
				due := start.Add(time.Duration(tick) * interval / phases)
				if d := time.Until(due); d > 0 {
					select {
					case <-stop:
						return
					case <-time.After(d):
					}
				} else {
					select {
					case <-stop:
						return
					default:
					}
				}
				w := window()
				for _, c := range mine[tick%phases] {
					for dir, ep := range []endpoint{c.a, c.b} {
						fill(buf, c, dir, w)
						if err := ep.send(buf); err != nil {
							st.sendErrs.Add(1)
							continue
						}
						if w {
							st.sent[dir].Add(1)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
}
