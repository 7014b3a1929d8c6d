package mediagw

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// minSecretLen is the shortest accepted shared secret: 16 bytes keeps HMAC tokens and the
// bearer secret out of brute-force reach.
const minSecretLen = 16

// Config configures a Gateway. Zero fields get their value from DefaultConfig (filled in
// one place, withDefaults); the defaults are documented on each field.
type Config struct {
	// BindAddr is the IP the UDP ports are bound on. Default 127.0.0.1.
	BindAddr string
	// PublicAddr is the address advertised for SDP (NAT deployments). Default BindAddr;
	// required when BindAddr is unspecified (0.0.0.0 or ::).
	PublicAddr string
	// PortMin and PortMax bound the UDP ports; RTP takes even ports, RTCP the next odd one.
	// Default 20000-29999.
	PortMin, PortMax int
	// PublicWSURL is the ws:// or wss:// base the browser reaches MediaHandler at, e.g.
	// "wss://media.example.com". Required.
	PublicWSURL string
	// Secret is the shared API secret, media token key and event signing key (>= 16 bytes).
	Secret string
	// TokenTTL is how long a media token stays valid for attaching. Default 30 s: the
	// browser attaches right after it reads the URL from the DSM; a short life makes a
	// leaked URL useless soon.
	TokenTTL time.Duration
	// MediaTimeout ends a termination with a remote when no valid packet crossed either
	// way for this long (not while on hold). Default 30 s, well above a browser's
	// reconnect time and RTCP's 5 s interval.
	MediaTimeout time.Duration
	// SetupTimeout ends a termination that got no remote for this long. Default 5 min,
	// above SIP timer C (3 min) so a long ringing call survives, yet a crashed AS adapter
	// does not leak ports forever.
	SetupTimeout time.Duration
	// DisableLatching turns latching off: UDP is accepted only from the negotiated remote
	// address and port. With latching (the default), a far end whose SDP names a private
	// address (behind NAT) and that sends nothing from it within LatchWindow is latched
	// to the first other source once; a far end whose SDP names a reachable address is
	// never latched elsewhere (source.go).
	DisableLatching bool
	// LatchWindow is how long the SDP's own private address has to send first before
	// another source may latch. Default 1 s: a far end on the same private network sends
	// within a packet time of answering, while a far end behind NAT loses no more than
	// this much of its first audio; a spray inside the window is dropped.
	LatchWindow time.Duration
	// WSQueue is the number of packets queued toward one WebSocket before packets are
	// dropped. Default 64 (over 0.6 s of audio plus RTCP): enough to ride out a TCP
	// hiccup, small enough not to build latency.
	WSQueue int
	// MaxPacket is the largest accepted packet in bytes. Default 1500, an Ethernet MTU: no
	// SIP peer sends larger RTP over UDP.
	MaxPacket int
	// MaxTerminations bounds live terminations. Default (0): the number of port pairs.
	MaxTerminations int
	// EventQueue bounds events waiting for HTTP delivery. Default 1024.
	EventQueue int
	// EventHTTPClient posts events. Default: an http.Client of its own without a timeout
	// (each attempt has a 5 s context).
	EventHTTPClient *http.Client
	// OnEvent, when set, receives every event in process, each call on its own goroutine;
	// Close (and the end of Run) waits for running calls, so it must return.
	OnEvent func(Event)
	// AllowedOrigins, when not empty, restricts the WebSocket Origin header to these
	// values (scheme://host[:port]). Empty accepts any origin: the token is the guard.
	AllowedOrigins []string
	// SweepInterval is how often timeouts are checked. Default 1 s (timeouts are tens of
	// seconds; a second of slack is irrelevant and the sweep is cheap).
	SweepInterval time.Duration
}

// DefaultConfig returns every knob at its default. PublicWSURL and Secret have none (they
// are required); PublicAddr and MaxTerminations are left zero because their defaults
// follow other fields (BindAddr, the port range).
func DefaultConfig() Config {
	return Config{
		BindAddr:        "127.0.0.1",
		PortMin:         20000,
		PortMax:         29999,
		TokenTTL:        30 * time.Second,
		MediaTimeout:    30 * time.Second,
		SetupTimeout:    5 * time.Minute,
		LatchWindow:     time.Second,
		WSQueue:         64,
		MaxPacket:       1500,
		EventQueue:      1024,
		EventHTTPClient: &http.Client{},
		SweepInterval:   time.Second,
	}
}

// withDefaults fills the zero fields of c from DefaultConfig (the only place that does)
// and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	bind := net.ParseIP(c.BindAddr)
	if bind == nil {
		return c, fmt.Errorf("mediagw: config: bind address %q is not an IP", c.BindAddr)
	}
	if c.PublicAddr == "" {
		if bind.IsUnspecified() {
			return c, fmt.Errorf("mediagw: config: public address required with bind address %s", c.BindAddr)
		}
		c.PublicAddr = c.BindAddr
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = d.PortMin, d.PortMax
	}
	if c.PortMin%2 == 1 {
		c.PortMin++
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMax < c.PortMin+1 {
		return c, fmt.Errorf("mediagw: config: port range %d-%d: want 1024 <= min < max <= 65535 with room for a pair", c.PortMin, c.PortMax)
	}
	u, err := url.Parse(c.PublicWSURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return c, fmt.Errorf("mediagw: config: public ws url %q: want ws(s)://host[:port]", c.PublicWSURL)
	}
	c.PublicWSURL = strings.TrimRight(c.PublicWSURL, "/")
	if len(c.Secret) < minSecretLen {
		return c, fmt.Errorf("mediagw: config: secret shorter than %d bytes", minSecretLen)
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = d.TokenTTL
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = d.MediaTimeout
	}
	if c.SetupTimeout <= 0 {
		c.SetupTimeout = d.SetupTimeout
	}
	if c.LatchWindow <= 0 {
		c.LatchWindow = d.LatchWindow
	}
	if c.WSQueue <= 0 {
		c.WSQueue = d.WSQueue
	}
	if c.MaxPacket <= 0 {
		c.MaxPacket = d.MaxPacket
	}
	if c.MaxPacket < minRTPHeader || c.MaxPacket > 65535 {
		return c, fmt.Errorf("mediagw: config: max packet %d out of range", c.MaxPacket)
	}
	pairs := (c.PortMax - c.PortMin + 1) / 2
	if c.MaxTerminations <= 0 || c.MaxTerminations > pairs {
		c.MaxTerminations = pairs
	}
	if c.EventQueue <= 0 {
		c.EventQueue = d.EventQueue
	}
	if c.EventHTTPClient == nil {
		c.EventHTTPClient = d.EventHTTPClient
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = d.SweepInterval
	}
	return c, nil
}
