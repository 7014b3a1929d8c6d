package otbridge

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// closeWait is how long the server waits for the client's answer to its close frame
// before closing TCP: closing at once, with the client's frames still unread, makes the
// kernel send a reset, and the client then loses the close frame (and its code) too.
const closeWait = 2 * time.Second

// refusalBurst: a client refused with rate_limited may go on sending at its rate with a
// burst this many times OpsPerSecond before it is closed with 4029. A client that floods
// for a moment, or does not read its nacks at once, stays connected; one that ignores
// them for seconds on end is cut off.
const refusalBurst = 10

// conn is one WebSocket connection. The reader goroutine (serve) handles client messages
// one at a time; a writer goroutine exists only while messages are queued, so an idle
// connection costs one goroutine.
type conn struct {
	b   *Bridge
	ws  *websocket.Conn
	log *slog.Logger

	// Owned by the reader goroutine.
	authed  bool
	tokens  float64         // rate-limit bucket
	filled  time.Time       // when tokens and refusals were last topped up
	refused float64         // refusal bucket: rate_limited answers left before 4029
	claimed map[string]bool // own objects already counted (store.Claim) on this connection

	// key is the client key, set once at hello before any subscription exists, with the
	// client's epoch (its page load) and the token's claims.
	key    string
	epoch  string
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
	room      *sync.Cond // signalled when the writer takes a batch or the connection closes

	shut atomic.Bool // closed, readable without mu by the writer between frames

	// wmu orders the writer's batches and the close frame: held around each batch write
	// and around the close frame's, so the close frame is the last frame sent.
	wmu sync.Mutex
}

// inflight is the op of one object that awaits its ack (one per object per connection).
type inflight struct {
	seq int64
	rev int64 // revision the store committed it at; 0 while the commit runs
}

func newConn(b *Bridge, ws *websocket.Conn) *conn {
	c := &conn{b: b, ws: ws, log: b.log, subs: make(map[string]*sub), inflight: make(map[string]*inflight)}
	c.room = sync.NewCond(&c.mu)
	return c
}

// replyRoom is how full the send queue may be before the reader stops reading: replies
// (acks, nacks, snapshots) come only from client messages, so a client that sends faster
// than it reads is slowed down by TCP instead of filling the queue; the last quarter stays
// for feed deliveries, which never wait.
func (c *conn) replyRoom() int { return max(1, c.b.cfg.SendQueue*3/4) }

// waitRoom blocks the reader until the send queue has room for replies or the connection
// is closing.
func (c *conn) waitRoom() {
	c.mu.Lock()
	for len(c.queue) >= c.replyRoom() && !c.closed && c.closeCode == 0 {
		c.room.Wait()
	}
	c.mu.Unlock()
}

// serve reads and handles messages until the connection fails or is closed, then removes
// the connection's subscriptions.
func (c *conn) serve() {
	defer c.cleanup()
	cfg := &c.b.cfg
	c.ws.SetReadLimit(cfg.MaxFrameBytes)
	_ = c.ws.SetReadDeadline(time.Now().Add(cfg.HelloTimeout))
	idle := 2 * cfg.PingInterval
	c.ws.SetPongHandler(func(string) error {
		if c.shut.Load() {
			return nil // closing: the deadline set by closeLocked stands
		}
		return c.ws.SetReadDeadline(time.Now().Add(idle))
	})
	for {
		c.waitRoom()
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
		switch {
		case c.shut.Load():
			// Closing: read on until the client answers the close frame, handle nothing.
		case mt != websocket.TextMessage:
			c.reject(protoErr(CodeBadJSON, "binary frames are not part of the protocol"), "", "")
		case !utf8.Valid(buf.Bytes()):
			// RFC 6455 8.1: an endpoint that receives a text frame of invalid UTF-8 fails the
			// connection with 1007. Nothing in the frame is handled.
			c.b.m.rejects.WithLabelValues("invalid_utf8").Inc()
			c.close(CloseInvalidUTF8, "text frame is not valid UTF-8")
		default:
			c.handle(buf.Bytes())
		}
		if buf.Cap() <= 64<<10 {
			c.b.readBufs.Put(buf)
		}
		if c.authed && !c.shut.Load() {
			_ = c.ws.SetReadDeadline(time.Now().Add(idle))
		}
	}
}

func (c *conn) cleanup() {
	c.mu.Lock()
	c.closed = true
	c.shut.Store(true)
	c.room.Broadcast()
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
	if c.authed {
		c.b.presence.closed(c.key)
	}
}

func (c *conn) handle(b []byte) {
	m, perr := Decode(b)
	if perr != nil {
		if c.authed && m.Nackable() {
			c.nack(m, perr)
			return
		}
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
	c.epoch = m.Epoch
	c.b.presence.opened(c.key)
	c.log = c.log.With("client", claims.Client)
	c.tokens = 2 * c.b.cfg.OpsPerSecond
	c.refused = refusalBurst * c.b.cfg.OpsPerSecond
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
// When the bucket is empty it takes one from the refusal bucket instead (the same rate,
// burst refusalBurst times it); when that is empty too, the client has ignored its
// rate_limited answers for seconds and the connection is closed with 4029 once the
// answers already queued are written.
func (c *conn) allow() bool {
	now := time.Now()
	rate := c.b.cfg.OpsPerSecond
	dt := now.Sub(c.filled).Seconds() * rate
	c.filled = now
	c.tokens = min(c.tokens+dt, 2*rate)
	c.refused = min(c.refused+dt, refusalBurst*rate)
	if c.tokens >= 1 {
		c.tokens--
		return true
	}
	if c.refused--; c.refused < 0 {
		c.mu.Lock()
		if c.closeCode == 0 && !c.closed {
			c.log.Warn("client ignored rate_limited; closing", "ops_per_second", rate)
		}
		c.closeAfterLocked(CloseRateLimited, "rate limit ignored")
		c.mu.Unlock()
	}
	return false
}

func (c *conn) reject(e *ProtoError, id, obj string) {
	c.b.m.rejects.WithLabelValues(e.Code).Inc()
	c.send(encodeError(e, id, obj))
}

func (c *conn) nack(m Msg, e *ProtoError) {
	c.b.m.rejects.WithLabelValues(e.Code).Inc()
	c.send(encodeNack(m.Obj, m.Seq, e, 0))
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
		c.room.Broadcast()
		c.mu.Unlock()
		if err := c.writeBatch(batch); err != nil {
			c.log.Debug("write failed; closing", "err", err)
			c.mu.Lock()
			c.writing = false
			c.closed = true
			c.shut.Store(true)
			c.queue = nil
			c.room.Broadcast()
			c.mu.Unlock()
			c.ws.Close()
			return
		}
		clear(batch)
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

// closeLocked drops what is queued and starts the closing handshake (RFC 6455 7.1): the
// close frame is written (waiting up to WriteTimeout for a client that reads slowly, so
// that a slow consumer still learns why), then the reader goes on reading, and handling
// nothing, until the client answers or closeWait passes; the reader's cleanup closes TCP.
func (c *conn) closeLocked(code int, why string) {
	if c.closed {
		return
	}
	c.closed = true
	c.shut.Store(true)
	c.queue, c.spare = nil, nil
	c.room.Broadcast()
	ws, wt := c.ws, c.b.cfg.WriteTimeout
	go func() {
		_ = ws.SetReadDeadline(time.Now().Add(wt + closeWait))
		// After the batch being written, if any: nothing may follow the close frame, and
		// writeBatch checks shut under wmu before each write.
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, why), time.Now().Add(wt))
		_ = ws.SetReadDeadline(time.Now().Add(closeWait))
	}()
}
