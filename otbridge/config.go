package otbridge

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

// Config tunes a Bridge. Zero values take the defaults listed in docs/dsm-protocol.md; they
// are filled in one place, fill.
type Config struct {
	// Secret signs client tokens (HMAC-SHA256). Every instance behind one load balancer must
	// share it, so it is required (at least 16 bytes).
	Secret []byte
	// TokenTTL is how long a token from /session stays valid (12 h: a working day on one page
	// without a refresh; pages refresh well before).
	TokenTTL time.Duration
	// MaxFrameBytes bounds one incoming frame (32 KiB: a full op of 32 elements is rarely over
	// a few KiB, and the bound caps what one connection can make the server buffer). A bigger
	// frame closes the connection with 1009.
	MaxFrameBytes int64
	// MaxSubs bounds the subscriptions of one connection (64: a page watches its player
	// objects, its user and a few conferences).
	MaxSubs int
	// OpsPerSecond is the sustained rate of op and sub messages per connection; the token
	// bucket holds twice as many (200/s: far above what a page does, low enough that one
	// connection cannot saturate Redis). Load tests raise it.
	OpsPerSecond float64
	// SendQueue bounds the messages waiting to be written to one connection (256: a few
	// seconds of a busy object). A connection whose queue is full is a slow consumer and is
	// closed with 4008; it never holds up anyone else.
	SendQueue int
	// Instance names this gateway instance in welcome messages and logs (default host-pid).
	Instance string
	// WriteTimeout bounds one frame write (10 s: a healthy browser on a bad mobile link
	// drains a frame far faster; longer means the peer is gone).
	WriteTimeout time.Duration
	// PingInterval is how often the server sends a WebSocket ping; a connection that sends
	// nothing (not even the automatic pong) for two intervals is closed (30 s: below the idle
	// timeouts of common proxies and NATs).
	PingInterval time.Duration
	// HelloTimeout is how long a new connection may take to send hello (10 s).
	HelloTimeout time.Duration
	// CommitTimeout bounds one store round trip for an op or a read (5 s: Redis answers in
	// well under a millisecond; five seconds means it is unreachable).
	CommitTimeout time.Duration
	// RefreshWorkers is the number of goroutines that catch up or resync subscriptions after
	// a gap or a lost feed (8 bounds the Redis reads a burst of resyncs makes at once).
	RefreshWorkers int
	// Policy decides what a token may read and write (default: the Grants of
	// docs/dsm-protocol.md, DefaultPolicy).
	Policy Policy
	// CheckOrigin checks the Origin of an upgrade request (default: same host, as gorilla's).
	CheckOrigin func(r *http.Request) bool
}

// Defaults of Config, in one place.
const (
	defaultTokenTTL       = 12 * time.Hour
	defaultMaxFrameBytes  = 32 << 10
	defaultMaxSubs        = 64
	defaultOpsPerSecond   = 200
	defaultSendQueue      = 256
	defaultWriteTimeout   = 10 * time.Second
	defaultPingInterval   = 30 * time.Second
	defaultHelloTimeout   = 10 * time.Second
	defaultCommitTimeout  = 5 * time.Second
	defaultRefreshWorkers = 8
	minSecretBytes        = 16
)

func (c *Config) fill() error {
	if len(c.Secret) < minSecretBytes {
		return fmt.Errorf("%w: %d bytes < %d", ErrSecret, len(c.Secret), minSecretBytes)
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = defaultTokenTTL
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = defaultMaxFrameBytes
	}
	if c.MaxSubs <= 0 {
		c.MaxSubs = defaultMaxSubs
	}
	if c.OpsPerSecond <= 0 {
		c.OpsPerSecond = defaultOpsPerSecond
	}
	if c.SendQueue <= 0 {
		c.SendQueue = defaultSendQueue
	}
	if c.Instance == "" {
		h, _ := os.Hostname()
		c.Instance = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = defaultHelloTimeout
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = defaultCommitTimeout
	}
	if c.RefreshWorkers <= 0 {
		c.RefreshWorkers = defaultRefreshWorkers
	}
	if c.Policy == nil {
		c.Policy = DefaultPolicy{}
	}
	return nil
}
