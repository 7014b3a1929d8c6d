package asadapter

import (
	"fmt"
	"net"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/ptt"
)

// DTMF modes.
const (
	DTMFRFC4733 = "rfc4733" // telephone-event packets sent by the media gateway
	DTMFInfo    = "info"    // SIP INFO with application/dtmf-relay
)

// Config configures an Adapter. Zero values take the defaults of DefaultConfig (or, for the
// few derived from other fields, the rule given with the field).
type Config struct {
	// Instance names this gateway instance in claims, dialog records, DSM writes and
	// logs. Required: the gateway's configuration defaults it (hostname-pid).
	Instance string
	// Domain is the SIP domain of the adapter's identity and of bare user names written
	// by browsers as remote ("bob" → sip:bob@Domain). Default: the advertised host.
	Domain string
	// ConferenceDomain completes a conference id written without a domain in a player's
	// conference field (Join: "conf1" → sip:conf1@ConferenceDomain), as the users side
	// completes the ids it subscribes to. Default: the domain of the caller's address of
	// record for a registered user, else Domain.
	ConferenceDomain string
	// TalkGroupDomain completes a talk group id written without a domain in the
	// conference field of a push-to-talk ("poc") player: "grp1" →
	// sip:grp1@TalkGroupDomain (docs/push-to-talk.md). Default: ConferenceDomain's rule.
	TalkGroupDomain string
	// Floor configures the floor channels of push-to-talk calls (asadapter/ptt): their
	// UDP ports and the participant's timers. Its PublicAddr is AdvertiseHost.
	Floor ptt.Config
	// User is the user part of the adapter's own identity (From of outgoing calls).
	User string
	// DisplayName is the display name of the adapter's identity.
	DisplayName string
	// ListenUDP, ListenTCP and ListenTLS are the listen addresses ("" disables one;
	// port 0 picks a free port). When all three are empty, ListenUDP and ListenTCP take
	// DefaultConfig's "0.0.0.0:5060".
	ListenUDP, ListenTCP, ListenTLS string
	// TLSCert and TLSKey are PEM files for the TLS listener.
	TLSCert, TLSKey string
	// TLSRootCAs is a PEM file of the certificate authorities trusted when the adapter
	// connects over TLS (a CSCF with a private CA). Default: the system's pool.
	TLSRootCAs string
	// TLSClientCAs is a PEM file of the certificate authorities whose client certificates
	// the TLS listener accepts: mutual TLS with the CSCF, whose certificate then names one
	// of Edge.TrustedNames. Empty, no client certificate is asked for. The listener's own
	// certificate (TLSCert) is presented when the adapter connects to a CSCF that asks.
	TLSClientCAs string
	// AdvertiseHost is the host written in Via, Contact and SDP origin (a public
	// address behind NAT). Default: the listen host, or 127.0.0.1 for 0.0.0.0.
	AdvertiseHost string
	// OutboundProxy is the CSCF's SIP URI ("sip:cscf.example.net:5060;transport=tcp").
	// All out-of-dialog requests are sent to it as a pre-loaded route; "" sends
	// directly to the request URI. Its host is part of the trust domain.
	OutboundProxy string
	// Edge configures the SIP edge (package asadapter/edge): the trust domain (the
	// outbound proxy's host is added to Edge.Trusted), TLS peer names, direct peers'
	// credentials (Edge.Realm defaults to Domain) and the per-source bounds.
	Edge edge.Config
	// AuthUser and AuthPassword answer 401/407 digest challenges.
	AuthUser, AuthPassword string
	// InviteTimeout bounds how long an outgoing call may ring before it is cancelled
	// and failed with 408, and an incoming call before it is rejected with 480 (60 s: a
	// minute of ringing is what phones allow).
	InviteTimeout time.Duration
	// ClaimTTL is the lease of a claim on a player: the calls of an instance that died
	// or was cut off from Redis are taken over by another instance this long after their
	// last renewal, and go on there (takeover.go). It is the main term of the media gap
	// such a loss causes (1 s). Calls renew every quarter of it and stop acting when no
	// renewal got through for half of it (lease.go): an idle call is paused and resumes
	// when a renewal finds the claim still ours, or restores it if it lapsed and nobody
	// claimed it since (pause.go, lease_renew.go), so a live instance loses a call only
	// when no renewal of it reached Redis for the whole lease and another instance took
	// it meanwhile. A shorter lease
	// is a shorter gap, and more calls moved off a live instance on a machine too loaded
	// to renew in time.
	ClaimTTL time.Duration
	// Rescan is how often the players index and the live calls are re-read, catching
	// anything a lost notification missed (5 s).
	Rescan time.Duration
	// Workers bound how many player objects are examined at once (64: enough to keep
	// Redis and the media gateway busy at a thousand setups per second).
	Workers int
	// QueueLen bounds the wake-up queue; a wake-up that does not fit is dropped and the
	// next rescan catches it (16384).
	QueueLen int
	// MaxCalls bounds the calls this instance handles at once (10,000); more players
	// are left for other instances.
	MaxCalls int
	// MinSessionExpires is the smallest RFC 4028 session interval accepted from a peer;
	// a smaller Session-Expires is raised to it (90 s, the RFC's Min-SE floor; whole
	// seconds, at least 1 s; tests lower it to see refreshes within seconds).
	MinSessionExpires time.Duration
	// DTMF selects how digits written by the browser are sent: DTMFRFC4733 (default)
	// or DTMFInfo.
	DTMF string
	// KeyPrefix prefixes the adapter's own Redis keys (claims, dialogs). Default
	// "asadapter:".
	KeyPrefix string
	// NoKeyspace turns off the keyspace-notification wake-up beside the change feed
	// (default false: both run).
	NoKeyspace bool
	// SIPLog enables sipgo's own debug logging of messages (noisy).
	SIPLog bool
}

// DefaultConfig returns every knob at its default. Instance has none; Domain and
// AdvertiseHost are derived from the listeners by New.
func DefaultConfig() Config {
	return Config{
		User:              "dsmgw",
		ListenUDP:         "0.0.0.0:5060",
		ListenTCP:         "0.0.0.0:5060",
		InviteTimeout:     60 * time.Second,
		ClaimTTL:          time.Second,
		Rescan:            5 * time.Second,
		Workers:           64,
		QueueLen:          16384,
		MaxCalls:          10000,
		MinSessionExpires: 90 * time.Second, // RFC 4028 section 4: the Min-SE every compliant peer assumes
		DTMF:              DTMFRFC4733,
		KeyPrefix:         "asadapter:",
		Edge:              edge.DefaultConfig(),
		Floor:             ptt.DefaultConfig(),
	}
}

// withDefaults checks c and fills its zero fields from DefaultConfig and the derivation
// rules of the fields' comments.
func (c Config) withDefaults() (Config, error) {
	if c.Instance == "" {
		return c, fmt.Errorf("%w: Instance is required", ErrConfig)
	}
	d := DefaultConfig()
	if c.ListenUDP == "" && c.ListenTCP == "" && c.ListenTLS == "" {
		c.ListenUDP, c.ListenTCP = d.ListenUDP, d.ListenTCP
	}
	if c.ListenTLS != "" && (c.TLSCert == "" || c.TLSKey == "") {
		return c, fmt.Errorf("%w: ListenTLS needs TLSCert and TLSKey", ErrConfig)
	}
	if len(c.Edge.TrustedNames) > 0 && (c.ListenTLS == "" || c.TLSClientCAs == "") {
		return c, fmt.Errorf("%w: trusted TLS peer names need ListenTLS and TLSClientCAs (client certificates)", ErrConfig)
	}
	if c.AdvertiseHost == "" {
		for _, a := range []string{c.ListenUDP, c.ListenTCP, c.ListenTLS} {
			if h, _, err := net.SplitHostPort(a); err == nil && a != "" {
				c.AdvertiseHost = h
				break
			}
		}
		if ip := net.ParseIP(c.AdvertiseHost); c.AdvertiseHost == "" || (ip != nil && ip.IsUnspecified()) {
			c.AdvertiseHost = "127.0.0.1"
		}
	}
	if c.Domain == "" {
		c.Domain = c.AdvertiseHost
	}
	if c.Floor.BindAddr == "" {
		c.Floor.BindAddr = d.Floor.BindAddr
	}
	if c.Floor.PortMin == 0 {
		c.Floor.PortMin = d.Floor.PortMin
	}
	if c.Floor.PortMax == 0 {
		c.Floor.PortMax = d.Floor.PortMax
	}
	if c.Floor.Priority == 0 {
		c.Floor.Priority = d.Floor.Priority
	}
	if c.Floor.PublicAddr == "" {
		c.Floor.PublicAddr = c.AdvertiseHost
	}
	if c.Edge.Realm == "" {
		c.Edge.Realm = c.Domain
	}
	if c.User == "" {
		c.User = d.User
	}
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.InviteTimeout, &d.InviteTimeout}, {&c.ClaimTTL, &d.ClaimTTL}, {&c.Rescan, &d.Rescan},
		{&c.MinSessionExpires, &d.MinSessionExpires},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.MinSessionExpires < time.Second {
		return c, fmt.Errorf("%w: MinSessionExpires %s below 1 s (Session-Expires counts whole seconds)",
			ErrConfig, c.MinSessionExpires)
	}
	for _, f := range []struct{ v, def *int }{
		{&c.Workers, &d.Workers}, {&c.QueueLen, &d.QueueLen}, {&c.MaxCalls, &d.MaxCalls},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	switch c.DTMF {
	case "":
		c.DTMF = d.DTMF
	case DTMFRFC4733, DTMFInfo:
	default:
		return c, fmt.Errorf("%w: DTMF mode %q (want %q or %q)", ErrConfig, c.DTMF, DTMFRFC4733, DTMFInfo)
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = d.KeyPrefix
	}
	if c.OutboundProxy != "" {
		var u sip.Uri
		if err := sip.ParseUri(c.OutboundProxy, &u); err != nil {
			return c, fmt.Errorf("%w: OutboundProxy %q: %v", ErrConfig, c.OutboundProxy, err)
		}
	}
	return c, nil
}
