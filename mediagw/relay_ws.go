package mediagw

import (
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/rtp"
)

// WebSocket close codes the gateway sends.
const (
	wsCloseNormal   = websocket.CloseNormalClosure
	wsCloseReplaced = 4001 // a second attach took over (docs/mediagw-api.md)
)

// wsReadLimit bounds one WebSocket message. Messages above MaxPacket but below this are
// read, dropped and counted as oversized; above it the connection is closed (1009),
// because a peer sending that much is not an RTP endpoint.
const wsReadLimit = 64 << 10

// wsWriteTimeout is how long one write to the browser may block before the connection is
// considered dead and closed; meanwhile the bounded queue drops packets instead.
const wsWriteTimeout = 5 * time.Second

// wsConn is one attached browser: a send queue drained by one writer goroutine.
type wsConn struct {
	conn *websocket.Conn
	q    chan *[]byte
	pool *sync.Pool
	done chan struct{}
	once sync.Once
}

// enqueue copies pkt into a pooled buffer and queues it without blocking; false when the
// queue is full (the browser reads too slowly) or the connection is closing.
func (w *wsConn) enqueue(pkt []byte) bool {
	bp := w.pool.Get().(*[]byte)
	*bp = append((*bp)[:0], pkt...)
	select {
	case w.q <- bp:
		return true
	default:
		w.pool.Put(bp)
		return false
	}
}

// writeLoop sends queued packets, one binary message each, until the connection closes.
func (w *wsConn) writeLoop(t *termination) {
	defer t.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case bp := <-w.q:
			_ = w.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			err := w.conn.WriteMessage(websocket.BinaryMessage, *bp)
			w.pool.Put(bp)
			if err != nil {
				t.log.Info("websocket write failed, detaching", "err", err)
				w.close(websocket.CloseGoingAway, "write failed")
				return
			}
		}
	}
}

// close sends a close frame (best effort) and closes the connection, which ends the
// reader. Safe to call twice.
func (w *wsConn) close(code int, reason string) {
	w.once.Do(func() {
		close(w.done)
		_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
			time.Now().Add(time.Second))
		_ = w.conn.Close()
	})
}

// serveMedia is GET /media/{id}?token=...: token check, upgrade, then this goroutine
// becomes the reader of the attached WebSocket.
func (g *Gateway) serveMedia(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	token := r.URL.Query().Get("token")
	if token == "" {
		g.m.attaches.WithLabelValues("unauthorized").Inc()
		writeError(w, http.StatusUnauthorized, CodeUnauthorized, "mediagw: media token missing")
		return
	}
	// The token is checked before the lookup, so without a valid token nobody learns
	// which termination ids exist.
	if err := checkToken(g.cfg.Secret, id, token, time.Now(), g.cfg.TokenTTL); err != nil {
		g.m.attaches.WithLabelValues("forbidden").Inc()
		writeError(w, http.StatusForbidden, "forbidden", "mediagw: "+err.Error())
		return
	}
	t := g.lookup(id)
	if t == nil {
		g.m.attaches.WithLabelValues("not_found").Inc()
		writeError(w, http.StatusNotFound, CodeNotFound, "mediagw: termination "+id+" not found")
		return
	}
	conn, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	t.attach(conn)
}

// attach makes conn the termination's WebSocket, replacing (closing with 4001) an
// earlier one, and reads it until it closes.
func (t *termination) attach(conn *websocket.Conn) {
	conn.SetReadLimit(wsReadLimit)
	w := &wsConn{conn: conn, q: make(chan *[]byte, t.g.cfg.WSQueue), pool: &t.g.bufs, done: make(chan struct{})}
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		w.close(wsCloseNormal, "termination ended")
		return
	}
	t.wg.Add(1) // the writer; the reader is this goroutine, counted below
	t.wg.Add(1)
	old := t.ws.Swap(w)
	t.mu.Unlock()
	defer t.wg.Done()
	if old != nil {
		old.close(wsCloseReplaced, "replaced by a new attach")
		t.g.m.attaches.WithLabelValues("replaced").Inc()
		t.log.Info("websocket replaced by a new attach")
	} else {
		t.g.m.attaches.WithLabelValues("ok").Inc()
		t.log.Info("websocket attached", "remote", conn.RemoteAddr().String())
	}
	go w.writeLoop(t)
	t.readWS(w)
	if t.ws.CompareAndSwap(w, nil) && t.gated {
		t.detached()
	}
	w.close(wsCloseNormal, "")
}

// detached closes the gate of a push-to-talk termination whose browser went away (not
// replaced by a new attach) and tells the owner, so that the floor is released now:
// nobody holds a talk group silent with a closed tab.
func (t *termination) detached() {
	t.gate.Store(false)
	select {
	case <-t.done:
		return // the termination is ending: its own event says so
	default:
	}
	t.log.Info("websocket detached from a gated termination")
	t.g.notify(t.eventURL, t.event(EventDetached, "browser websocket closed"))
}

// readWS reads one packet per binary message into a reused buffer and relays it.
func (t *termination) readWS(w *wsConn) {
	buf := make([]byte, t.g.cfg.MaxPacket+1)
	var hdr rtp.Header
	for {
		mt, r, err := w.conn.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) {
				select {
				case <-w.done:
				default:
					t.log.Info("websocket read ended", "err", err)
				}
			}
			return
		}
		if mt != websocket.BinaryMessage {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			t.drop(dropNotBinary)
			continue
		}
		n, err := io.ReadFull(r, buf)
		switch {
		case err == nil:
			// The message fills MaxPacket+1 bytes: too large. Skip the rest.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
			t.drop(dropOversized)
			continue
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		default:
			return
		}
		t.fromWS(buf[:n], &hdr)
	}
}

// fromWS checks one packet from the browser and sends it to the far end.
func (t *termination) fromWS(pkt []byte, hdr *rtp.Header) {
	a, ok := t.admit(pkt, false, hdr)
	if !ok {
		return
	}
	p := a.peer
	now := time.Now().UnixNano()
	t.lastPacket.Store(now)
	if !a.rtcp {
		clock := p.pts.clock[a.info.pt]
		t.c.fromWS.update(a.info, clock, now)
		if p.hold {
			t.drop(dropHeld)
			return
		}
		if t.gated && !t.gate.Load() {
			// No floor: the packet goes nowhere, and the next one that passes starts a
			// talkspurt (outStream.gap).
			t.out.gap()
			t.drop(dropGated)
			return
		}
		out, newStream, ok := t.out.outgoing(a.info, clock, now)
		if !ok {
			t.drop(dropDTMF)
			return
		}
		// pkt is our own read buffer: the header is patched in place.
		if out.seq != a.info.seq {
			binary.BigEndian.PutUint16(pkt[2:], out.seq)
		}
		if out.rewrite {
			if out.marker {
				pkt[1] |= 0x80
			}
			binary.BigEndian.PutUint32(pkt[4:], out.ts)
			binary.BigEndian.PutUint32(pkt[8:], out.ssrc)
			if newStream {
				t.log.Info("new browser stream mapped onto the stream the far end knows",
					"browser_ssrc", a.info.ssrc, "ssrc", out.ssrc, "seq", out.seq)
			}
		}
	}
	if why := t.sendUDP(pkt, p, a.rtcp); why != dropNone {
		t.drop(why)
		return
	}
	t.relayed(&t.c.wsToUDP, &t.g.m.wsToUDP, a.rtcp, len(pkt))
}
