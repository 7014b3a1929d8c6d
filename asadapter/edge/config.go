package edge

import (
	"fmt"
	"time"
)

// Config configures an Edge. Zero values take the defaults of DefaultConfig.
type Config struct {
	// Trusted is the trust domain: addresses, CIDR prefixes or host names (resolved at
	// start and every minute) of the peers whose requests are taken as they come,
	// P-Asserted-Identity included: the CSCFs. The adapter adds its outbound proxy's
	// host. Empty, nothing is trusted.
	Trusted []string
	// TrustedNames are TLS peer names: a TLS connection whose client certificate (verified
	// against the listener's client CAs) carries one of them as a DNS name is trusted.
	// With any set, a TLS connection is trusted by its certificate only, not its address.
	TrustedNames []string
	// Peers are the digest credentials of direct peers outside the trust domain. With
	// any, an out-of-dialog request from outside is challenged (401) instead of refused
	// (403), and passes once answered; it stays untrusted (identity headers removed,
	// per-source bounds applied).
	Peers []Credential
	// Realm is the realm of those challenges. Required with Peers.
	Realm string
	// SourceRate is how many requests per second one untrusted source may send and have
	// handled (a burst of twice as many); above it they are answered 503 with Retry-After
	// (20: a busy direct peer's calls and their in-dialog requests, far below a scan).
	SourceRate float64
	// SourceDropRate is how many requests per second one untrusted source gets any
	// answer to; above it they are dropped silently (100: enough for a peer that does not
	// read Retry-After to learn of it, while a flood costs a look-up per packet and draws
	// no traffic back).
	SourceDropRate float64
	// SourceTransactions bounds the requests of one untrusted source being handled at
	// once (16).
	SourceTransactions int
	// SourceDialogs bounds the calls of one untrusted source at once (8).
	SourceDialogs int
	// SourceConnections bounds the open TCP and TLS connections of one untrusted source
	// (16).
	SourceConnections int
	// MaxSources bounds the untrusted sources tracked at once; beyond it new sources share
	// one set of bounds (4096: about half a megabyte).
	MaxSources int
	// Summary is how often refusals are logged, as one line with counts per reason and
	// the sources refused most (10 s), instead of a line per request.
	Summary time.Duration
}

// DefaultConfig returns every knob at its default.
func DefaultConfig() Config {
	return Config{
		SourceRate:         20,
		SourceDropRate:     100,
		SourceTransactions: 16,
		SourceDialogs:      8,
		SourceConnections:  16,
		MaxSources:         4096,
		Summary:            10 * time.Second,
	}
}

// withDefaults checks c and fills its zero fields from DefaultConfig.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.SourceRate <= 0 {
		c.SourceRate = d.SourceRate
	}
	if c.SourceDropRate <= 0 {
		c.SourceDropRate = d.SourceDropRate
	}
	if c.SourceDropRate < c.SourceRate {
		return c, fmt.Errorf("%w: SourceDropRate %g below SourceRate %g", ErrConfig, c.SourceDropRate, c.SourceRate)
	}
	for _, f := range []struct{ v, def *int }{
		{&c.SourceTransactions, &d.SourceTransactions}, {&c.SourceDialogs, &d.SourceDialogs},
		{&c.SourceConnections, &d.SourceConnections}, {&c.MaxSources, &d.MaxSources},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.Summary <= 0 {
		c.Summary = d.Summary
	}
	return c, nil
}
