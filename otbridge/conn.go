package otbridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// closeWait bounds the courtesy close frame: on a healthy link it leaves at once, on a
// stuck one there is no point waiting longer.
const closeWait = time.Second

// conn is one WebSocket connection. The reader goroutine (serve) handles client messages
// one at a time; a writer goroutine exists only while messages are queued, so an idle
// connection costs one goroutine.
type conn struct {
	b   *Bridge
	ws  *websocket.Conn
	log *slog.Logger

	// Owned by the reader goroutine.
	authed bool
	tokens float64   // rate-limit bucket
	filled time.Time // when tokens was last topped up

	// key is the client key, set once at hello before any subscription exists.
	key    string
	claims Claims

	mu        sync.Mutex // guards everything below and every sub's state
	subs      map[string]*sub
	inflight  map[string]*inflight
	queue     [][]byte // messages waiting for the writer, at most cfg.SendQueue
	spare     [][]byte // the writer's previous batch, reused as the next queue
	writing   bool     // a writer goroutine is running
	closed    bool
	closeCode int // close with this code once the queue is drained (0: none)
	closeWhy  string
	ping      *time.Timer
}

// inflight is the op of one object that awaits its ack (one per object per connection).
type inflight struct {
	seq int64
	rev int64 // revision the store committed it at; 0 while the commit runs
}

func newConn(b *Bridge, ws *websocket.Conn) *conn {
	return &conn{b: b, ws: ws, log: b.log, subs: make(map[string]*sub), inflight: make(map[string]*inflight)}
}

// serve reads and handles messages until the connection fails or is closed, then removes
// the connection's subscriptions.
func (c *conn) serve() {
	defer c.cleanup()
	cfg := &c.b.cfg
	c.ws.SetReadLimit(cfg.MaxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.HelloTimeout))
	idle := 2 * cfg.PingInterval
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(idle)) })
	for {
		mt, r, err := c.ws.NextReader()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				c.log.Debug("connection ended", "err", err)
			}
			return
		}
		buf := c.b.readBufs.Get().(*bytes.Buffer)
		buf.Reset()
		_, err = buf.ReadFrom(r)
		if err != nil {
			c.b.readBufs.Put(buf)
			c.log.Debug("connection ended while reading a frame", "err", err)
			return
		}
		if mt != websocket.TextMessage {
			c.reject(protoErr(CodeBadJSON, "binary frames are not part of the protocol"), "", "")
		} else {
			c.handle(buf.Bytes())
		}
		if buf.Cap() <= 64<<10 {
			c.b.readBufs.Put(buf)
		}
		if c.authed {
			_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		}
	}
}

func (c *conn) cleanup() {
	c.mu.Lock()
	c.closed = true
	c.queue, c.spare = nil, nil
	if c.ping != nil {
		c.ping.Stop()
	}
	subs := make([]*sub, 0, len(c.subs))
	for _, s := range c.subs {
		s.removed = true
		subs = append(subs, s)
	}
	c.subs = nil
	c.mu.Unlock()
	for _, s := range subs {
		c.b.hub.remove(s)
	}
	c.ws.Close()
}

func (c *conn) handle(b []byte) {
	m, perr := Decode(b)
	if perr != nil {
		c.reject(perr, m.ID, m.Obj)
		return
	}
	if !c.authed && m.T != TypeHello {
		c.reject(protoErr(CodeNotAuthenticated, "send hello with a token first"), m.ID, m.Obj)
		return
	}
	switch m.T {
	case TypeHello:
		c.hello(m)
	case TypeSub:
		c.subscribe(m)
	case TypeUnsub:
		c.unsubscribe(m)
	case TypeOp:
		c.op(m)
	case TypePing:
		c.send(encodePong(m.ID))
	}
}

func (c *conn) hello(m Msg) {
	if c.authed {
		c.reject(protoErr(CodeBadMessage, "already authenticated"), m.ID, "")
		return
	}
	claims, err := ParseToken(c.b.cfg.Secret, m.Token, time.Now())
	if err != nil {
		c.b.m.rejects.WithLabelValues(CodeBadToken).Inc()
		c.mu.Lock()
		c.enqueueLocked(encodeError(protoErr(CodeBadToken, "%v", err), m.ID, ""))
		c.closeAfterLocked(CloseBadToken, CodeBadToken)
		c.mu.Unlock()
		return
	}
	c.authed = true
	c.claims = claims
	c.key = claims.Client
	c.log = c.log.With("client", claims.Client)
	c.tokens = 2 * c.b.cfg.OpsPerSecond
	c.filled = time.Now()
	w, _ := json.Marshal(Welcome{T: TypeWelcome, Client: claims.Client, User: claims.User,
		Instance: c.b.cfg.Instance, Limits: c.b.limits})
	c.mu.Lock()
	c.ping = time.AfterFunc(c.b.cfg.PingInterval, c.sendPing)
	c.enqueueLocked(w)
	c.mu.Unlock()
}

// sendPing sends a WebSocket ping (browsers answer it without script) and re-arms itself.
func (c *conn) sendPing() {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	_ = c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.b.cfg.WriteTimeout))
	c.mu.Lock()
	if !c.closed {
		c.ping.Reset(c.b.cfg.PingInterval)
	}
	c.mu.Unlock()
}

// allow takes one token from the connection's bucket (OpsPerSecond, burst twice that).
func (c *conn) allow() bool {
	now := time.Now()
	rate := c.b.cfg.OpsPerSecond
	c.tokens += now.Sub(c.filled).Seconds() * rate
	c.filled = now
	if c.tokens > 2*rate {
		c.tokens = 2 * rate
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (c *conn) reject(e *ProtoError, id, obj string) {
	c.b.m.rejects.WithLabelValues(e.Code).Inc()
	c.send(encodeError(e, id, obj))
}

func (c *conn) nack(m Msg, e *ProtoError) {
	c.b.m.rejects.WithLabelValues(e.Code).Inc()
	c.send(encodeNack(m.Obj, m.Seq, e))
}

func (c *conn) send(msg []byte) {
	c.mu.Lock()
	c.enqueueLocked(msg)
	c.mu.Unlock()
}

// enqueueLocked queues msg for the writer. A full queue means the client does not read
// fast enough: it is cut off with 4008 (it reconnects and resumes) rather than being
// allowed to hold up the feed handler or grow without bound.
func (c *conn) enqueueLocked(msg []byte) {
	if c.closed || c.closeCode != 0 {
		return
	}
	if len(c.queue) >= c.b.cfg.SendQueue {
		c.b.m.slow.Inc()
		c.log.Warn("slow consumer cut off", "queued", len(c.queue))
		c.closeLocked(CloseSlowConsumer, "slow consumer")
		return
	}
	c.queue = append(c.queue, msg)
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// writeLoop writes queued messages until the queue is empty, then ends.
func (c *conn) writeLoop() {
	for {
		c.mu.Lock()
		if c.closed {
			c.writing = false
			c.mu.Unlock()
			return
		}
		if len(c.queue) == 0 {
			c.writing = false
			c.queue, c.spare = nil, nil // an idle connection keeps no buffers
			code, why := c.closeCode, c.closeWhy
			if code != 0 {
				c.closeLocked(code, why)
			}
			c.mu.Unlock()
			return
		}
		batch := c.queue
		c.queue = c.spare[:0]
		c.spare = nil
		c.mu.Unlock()
		for i, m := range batch {
			_ = c.ws.SetWriteDeadline(time.Now().Add(c.b.cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, m); err != nil {
				c.log.Debug("write failed; closing", "err", err)
				c.mu.Lock()
				c.writing = false
				c.closed = true
				c.queue = nil
				c.mu.Unlock()
				c.ws.Close()
				return
			}
			batch[i] = nil
		}
		c.mu.Lock()
		if c.spare == nil && cap(batch) <= 2*c.b.cfg.SendQueue {
			c.spare = batch[:0]
		}
		c.mu.Unlock()
	}
}

// closeAfterLocked closes the connection with code once the queued messages are written.
func (c *conn) closeAfterLocked(code int, why string) {
	if c.closed || c.closeCode != 0 {
		return
	}
	c.closeCode, c.closeWhy = code, why
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// close closes the connection now with code; safe to call more than once.
func (c *conn) close(code int, why string) {
	c.mu.Lock()
	c.closeLocked(code, why)
	c.mu.Unlock()
}

func (c *conn) closeLocked(code int, why string) {
	if c.closed {
		return
	}
	c.closed = true
	c.queue, c.spare = nil, nil
	ws := c.ws
	go func() {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, why), time.Now().Add(closeWait))
		ws.Close()
	}()
}
