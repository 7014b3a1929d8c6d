// Package dsmclient is a Go client of the DSM WebSocket protocol (docs/dsm-protocol.md):
// the Jupiter client algorithm per object (synchronized, awaiting confirm, awaiting with
// buffer), local apply, listeners, nack rollback, and automatic reconnect with resume
// (re-subscribe since the last revision, resend the op in flight with the same seq). Tests
// and the load generator use it; the Config hooks give benchmarks a cheap path.
package dsmclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"dsmgw/otbridge"
	"dsmgw/store"
)

// Errors of the client.
var (
	ErrBadToken = errors.New("dsmclient: token refused")
	ErrClosed   = errors.New("dsmclient: client closed")
)

// Ack reports an acknowledged op (Config.OnAck).
type Ack struct {
	Obj      string
	Seq, Rev int64
	Ops      []store.Op
	Sent, At time.Time // when the op was first sent; when its ack arrived
}

// Nack reports a refused op (Config.OnNack); its ops were rolled back.
type Nack struct {
	Obj       string
	Seq       int64
	Code, Msg string
	Ops       []store.Op
}

// Remote reports a live op this connection did not write (Config.OnRemote): another
// writer's, or one of another connection with the same client key.
type Remote struct {
	Obj string
	Rev int64
	Ops []store.Op
	At  time.Time
}

// Config configures a Client. Zero fields take their value from DefaultConfig.
type Config struct {
	// URL of the DSM endpoint, e.g. ws://host:port/dsm.
	URL string
	// Token from GET /session; TokenFunc, when set, is asked instead at every (re)connect.
	Token     string
	TokenFunc func(ctx context.Context) (string, error)
	// Dialer dials the WebSocket (nil: websocket.DefaultDialer); Header is sent with it.
	Dialer *websocket.Dialer
	Header http.Header
	// ReconnectMin and ReconnectMax bound the backoff between reconnect attempts
	// (50 ms doubling to 2 s: fast after a blip, gentle on a gateway that is down).
	ReconnectMin, ReconnectMax time.Duration
	// WriteTimeout bounds one frame write (10 s: a loopback or LAN write takes
	// microseconds; longer means the gateway is gone).
	WriteTimeout time.Duration
	// PingInterval and DeadAfter detect a half-open connection, as the browser's dsm.js
	// does: a JSON ping every PingInterval (20 s) draws a pong, and a connection on which
	// nothing at all arrived for DeadAfter (45 s) is dropped and resumed on a new one. A
	// gateway whose host vanished sends no reset: without this the client would wait for
	// the proxy in front of it to give up.
	PingInterval, DeadAfter time.Duration
	// Log receives the client's warnings (nil: discarded).
	Log *slog.Logger
	// Hooks run on the reader goroutine with the client's lock held: they must be quick
	// and must not call the client. They cost no allocation beyond the message itself.
	OnAck    func(Ack)
	OnNack   func(Nack)
	OnRemote func(Remote)
	OnError  func(code, msg, obj string)
}

// DefaultConfig returns every knob of Config at its default. URL and the token have none.
func DefaultConfig() Config {
	return Config{
		Dialer:       websocket.DefaultDialer,
		ReconnectMin: 50 * time.Millisecond,
		ReconnectMax: 2 * time.Second,
		WriteTimeout: 10 * time.Second,
		PingInterval: 20 * time.Second,
		DeadAfter:    45 * time.Second,
	}
}

// withDefaults returns c with every zero field taken from DefaultConfig, a discarding
// logger for a nil Log, and a TokenFunc that returns Token when none is set.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Dialer == nil {
		c.Dialer = d.Dialer
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = d.ReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = d.ReconnectMax
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = d.PingInterval
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = d.DeadAfter
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.TokenFunc == nil {
		tok := c.Token
		c.TokenFunc = func(context.Context) (string, error) { return tok, nil }
	}
	return c
}

// outQueue bounds the messages waiting to be written; a client that cannot write that
// many is cut off and resumes on a new connection. 256 is far more than one client has
// outstanding (one op in flight per object plus subscriptions) and keeps a load generator
// with 10,000 clients from holding a 96 KiB channel for each.
const outQueue = 256

// Client is one DSM connection with automatic reconnect. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger

	// epoch names this Client among the clients that use the same client key over time
	// (docs/dsm-protocol.md, "Seq"): its seqs deduplicate among themselves only.
	epoch string

	mu      sync.Mutex // guards everything below and every Object's state
	objects map[string]*Object
	link    *link // nil while disconnected
	first   *link // the link Dial made, until resume makes it link: for Close
	welcome otbridge.Welcome
	closed  bool
	err     error // fatal: the token was refused on reconnect
	done    chan struct{}
	closing chan struct{} // closed by Close: wakes a reconnect backoff at once
}

type link struct {
	ws   *websocket.Conn
	out  chan []byte
	stop chan struct{}
	once sync.Once
}

func (l *link) close() { l.once.Do(func() { close(l.stop); l.ws.Close() }) }

// Dial connects, sends hello and waits for welcome; then the client keeps reconnecting by
// itself until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg, log: cfg.Log.With("component", "dsmclient"), objects: make(map[string]*Object),
		done: make(chan struct{}), closing: make(chan struct{}), epoch: newEpoch()}
	l, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	// The first link is known to Close before Dial returns: a Close right after Dial must
	// close it, or the reader, blocked on a live connection, never ends and Close waits
	// for it forever. (It becomes c.link only in resume: until then a Subscribe's sub is
	// dropped and resume sends it, once.)
	c.mu.Lock()
	c.first = l
	c.mu.Unlock()
	go c.run(l)
	return c, nil
}

// Key returns the client key the server confirmed in welcome.
func (c *Client) Key() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome.Client
}

// Welcome returns the last welcome message (instance, limits).
func (c *Client) Welcome() otbridge.Welcome {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.welcome
}

func (c *Client) connect(ctx context.Context) (*link, error) {
	tok, err := c.cfg.TokenFunc(ctx)
	if err != nil {
		return nil, fmt.Errorf("dsmclient: token: %w", err)
	}
	ws, _, err := c.cfg.Dialer.DialContext(ctx, c.cfg.URL, c.cfg.Header)
	if err != nil {
		return nil, fmt.Errorf("dsmclient: dial %s: %w", c.cfg.URL, err)
	}
	hello, _ := json.Marshal(map[string]string{"t": otbridge.TypeHello, "token": tok, "epoch": c.epoch})
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.SetReadDeadline(dl)
	}
	if err := ws.WriteMessage(websocket.TextMessage, hello); err != nil {
		ws.Close()
		return nil, fmt.Errorf("dsmclient: hello: %w", err)
	}
	_, b, err := ws.ReadMessage()
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("dsmclient: waiting for welcome: %w", err)
	}
	_ = ws.SetReadDeadline(time.Time{})
	var w struct {
		otbridge.Welcome
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(b, &w); err != nil || w.T != otbridge.TypeWelcome {
		ws.Close()
		if w.Code == otbridge.CodeBadToken {
			return nil, fmt.Errorf("%w: %s", ErrBadToken, w.Msg)
		}
		return nil, fmt.Errorf("dsmclient: expected welcome, got %.200s", b)
	}
	c.mu.Lock()
	c.welcome = w.Welcome
	c.mu.Unlock()
	return &link{ws: ws, out: make(chan []byte, outQueue), stop: make(chan struct{})}, nil
}

// run serves one connection after another until Close or a refused token.
func (c *Client) run(l *link) {
	defer close(c.done)
	for {
		go c.writeLoop(l)
		c.resume(l)
		c.readLoop(l)
		l.close()
		c.mu.Lock()
		c.link = nil
		for _, o := range c.objects {
			o.loaded = false
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		var err error
		if l, err = c.reconnect(); err != nil {
			c.mu.Lock()
			c.err = err
			for _, o := range c.objects {
				c.failSubLocked(o, err)
			}
			c.mu.Unlock()
			if !errors.Is(err, ErrClosed) {
				c.log.Error("dsm client stopped", "err", err)
			}
			return
		}
	}
}

func (c *Client) reconnect() (*link, error) {
	wait := c.cfg.ReconnectMin
	for {
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		l, err := c.connect(ctx)
		cancel()
		if err == nil {
			return l, nil
		}
		if errors.Is(err, ErrBadToken) {
			return nil, err
		}
		c.log.Debug("reconnect failed", "err", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-c.closing:
			return nil, ErrClosed
		}
		if wait *= 2; wait > c.cfg.ReconnectMax {
			wait = c.cfg.ReconnectMax
		}
	}
}

// resume re-subscribes every object since its revision and resends blind ops in flight;
// subscribed objects resend theirs once the catch-up arrived (loadedLocked).
func (c *Client) resume(l *link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		// Close came while run reconnected: it saw no link to close, and this one's
		// reader would wait on a live connection forever (and Close with it).
		l.close()
		return
	}
	c.link, c.first = l, nil
	for _, o := range c.objects {
		if o.subscribed {
			c.sendSubLocked(o)
		} else if o.inflight != nil {
			c.sendOpLocked(o, o.inflight)
		} else {
			c.flushLocked(o)
		}
	}
}

func (c *Client) writeLoop(l *link) {
	ping := time.NewTicker(c.cfg.PingInterval)
	defer ping.Stop()
	n := 0
	for {
		select {
		case <-l.stop:
			return
		case <-ping.C:
			n++
			m, _ := json.Marshal(map[string]string{"t": otbridge.TypePing, "id": "p" + strconv.Itoa(n)})
			_ = l.ws.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if err := l.ws.WriteMessage(websocket.TextMessage, m); err != nil {
				l.close()
				return
			}
		case m := <-l.out:
			_ = l.ws.SetWriteDeadline(time.Now().Add(c.cfg.WriteTimeout))
			if err := l.ws.WriteMessage(websocket.TextMessage, m); err != nil {
				l.close()
				return
			}
		}
	}
}

func (c *Client) readLoop(l *link) {
	for {
		// Every message, a pong included, shows the connection alive.
		_ = l.ws.SetReadDeadline(time.Now().Add(c.cfg.DeadAfter))
		_, b, err := l.ws.ReadMessage()
		if err != nil {
			c.log.Debug("connection lost", "err", err)
			return
		}
		c.handle(b)
	}
}

// sendLocked queues msg on the current connection; without one it is dropped, as resume
// sends again whatever is still needed.
func (c *Client) sendLocked(msg []byte) {
	l := c.link
	if l == nil {
		return
	}
	select {
	case l.out <- msg:
	default:
		c.log.Warn("send queue full; reconnecting")
		l.close()
	}
}

type opMsg struct {
	T    string     `json:"t"`
	Obj  string     `json:"obj"`
	Base *int64     `json:"base,omitempty"`
	Seq  int64      `json:"seq"`
	Ops  []store.Op `json:"ops"`
}

func (c *Client) sendOpLocked(o *Object, p *pend) {
	m := opMsg{T: otbridge.TypeOp, Obj: o.addr, Seq: p.seq, Ops: p.ops}
	if o.subscribed {
		base := o.rev
		m.Base = &base
	}
	b, _ := json.Marshal(m)
	c.sendLocked(b)
}

func (c *Client) sendSubLocked(o *Object) {
	m := map[string]any{"t": otbridge.TypeSub, "obj": o.addr}
	if o.server != nil && o.rev > 0 {
		m["since"] = o.rev
	}
	b, _ := json.Marshal(m)
	c.sendLocked(b)
}

// flushLocked sends the next buffered op when nothing is in flight.
func (c *Client) flushLocked(o *Object) {
	if c.link == nil || o.inflight != nil || len(o.buffer) == 0 || (o.subscribed && !o.loaded) {
		return
	}
	p := o.buffer[0]
	o.buffer[0] = nil
	o.buffer = o.buffer[1:]
	if len(o.buffer) == 0 {
		o.buffer = nil
	}
	o.seq++
	p.seq = o.seq
	p.sent = time.Now()
	o.inflight = p
	c.sendOpLocked(o, p)
}

// loadedLocked marks o current after a snapshot or catch-up and resends or flushes.
func (c *Client) loadedLocked(o *Object) {
	o.loaded = true
	if o.ready != nil {
		close(o.ready)
		o.ready = nil
	}
	if o.inflight != nil {
		c.sendOpLocked(o, o.inflight) // same seq: never applied twice
		return
	}
	c.flushLocked(o)
}

func (c *Client) failSubLocked(o *Object, err error) {
	if o.ready != nil {
		o.subErr = err
		close(o.ready)
		o.ready = nil
	}
}

func (c *Client) ackHook(obj string, p *pend, rev int64, at time.Time) {
	if c.cfg.OnAck != nil {
		c.cfg.OnAck(Ack{Obj: obj, Seq: p.seq, Rev: rev, Ops: p.ops, Sent: p.sent, At: at})
	}
}

func (c *Client) opLimits() store.Limits {
	l := c.welcome.Limits
	if l.MaxOps == 0 {
		return store.DefaultLimits()
	}
	return store.Limits{MaxOps: l.MaxOps, MaxFieldBytes: l.MaxFieldBytes, MaxValueBytes: l.MaxValueBytes}
}

// newEpoch returns 96 random bits in base64url: unique among the clients of one key.
func newEpoch() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}
