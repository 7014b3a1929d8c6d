package otbridge

import (
	"fmt"
	"net/http"
	"time"
)

// Config tunes a Bridge. Zero fields take their value from DefaultConfig (the defaults
// listed in docs/dsm-protocol.md).
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
	// Instance names this gateway instance in welcome messages and logs. Required: the
	// gateway's configuration gives every component the same name.
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
	// MaxObjects caps the objects of one client key (players/<key>/...: its player objects
	// and private objects), counted at a page's first write of each (16: a page has one
	// player per media kind; load tests keep a few more).
	MaxObjects int
	// PresenceInterval is how often the bridge tells the store that the client keys of its
	// open connections are still present (30 s: the gateway sets it to a quarter of the
	// Janitor's grace period, so a connected key is never taken for gone).
	PresenceInterval time.Duration
	// FeedDownClose is how long the change feed may fail to read before the bridge closes
	// every connection with 1011 and refuses new ones (503) until it reads again (5 s: a
	// Redis restart takes less; an instance cut off from Redis would otherwise keep pages
	// that see no change, while the load balancer would send them to an instance that
	// does).
	FeedDownClose time.Duration
	// RefreshWorkers is the number of goroutines that catch up or resync subscriptions after
	// a gap or a lost feed (8 bounds the Redis reads a burst of resyncs makes at once).
	RefreshWorkers int
	// Policy decides what a token may read and write (default: the Grants of
	// docs/dsm-protocol.md, DefaultPolicy).
	Policy Policy
	// CheckOrigin checks the Origin of an upgrade request (default: same host, as gorilla's).
	CheckOrigin func(r *http.Request) bool
	// DemoSessions lets GET /session?user=U mint a token bound to any user U, for anyone.
	// Only a demo may do that (devstack and compose turn it on); off, user-bound sessions
	// come from the site's backend (POST /v1/sessions or a token it signs).
	DemoSessions bool
}

// minSecretBytes is the shortest token secret accepted: 128 bits, as HMAC-SHA256 keys
// should have at least.
const minSecretBytes = 16

// DefaultConfig returns every knob of Config at its default. Secret and Instance have
// none: New refuses a Config without them.
func DefaultConfig() Config {
	return Config{
		TokenTTL:         12 * time.Hour,
		MaxFrameBytes:    32 << 10,
		MaxSubs:          64,
		OpsPerSecond:     200,
		SendQueue:        256,
		WriteTimeout:     10 * time.Second,
		PingInterval:     30 * time.Second,
		HelloTimeout:     10 * time.Second,
		CommitTimeout:    5 * time.Second,
		RefreshWorkers:   8,
		FeedDownClose:    5 * time.Second,
		MaxObjects:       16,
		PresenceInterval: 30 * time.Second,
		Policy:           DefaultPolicy{},
	}
}

// withDefaults returns c with every zero (or negative) field taken from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	fill(&c.TokenTTL, d.TokenTTL)
	fill(&c.MaxFrameBytes, d.MaxFrameBytes)
	fill(&c.MaxSubs, d.MaxSubs)
	fill(&c.OpsPerSecond, d.OpsPerSecond)
	fill(&c.SendQueue, d.SendQueue)
	fill(&c.WriteTimeout, d.WriteTimeout)
	fill(&c.PingInterval, d.PingInterval)
	fill(&c.HelloTimeout, d.HelloTimeout)
	fill(&c.CommitTimeout, d.CommitTimeout)
	fill(&c.FeedDownClose, d.FeedDownClose)
	fill(&c.RefreshWorkers, d.RefreshWorkers)
	fill(&c.PresenceInterval, d.PresenceInterval)
	fill(&c.MaxObjects, d.MaxObjects)
	if c.Policy == nil {
		c.Policy = d.Policy
	}
	return c
}

// fill sets *v to d when *v is not positive.
func fill[T int | int64 | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// validate checks what has no default.
func (c Config) validate() error {
	if len(c.Secret) < minSecretBytes {
		return fmt.Errorf("%w: %d bytes < %d", ErrSecret, len(c.Secret), minSecretBytes)
	}
	if c.Instance == "" {
		return ErrNoInstance
	}
	return nil
}
