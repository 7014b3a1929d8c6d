package edge

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"
)

// The trust domain (RFC 3325 section 2.3): the peers whose requests are taken as they
// come, identity headers included. Entries are addresses, CIDR prefixes, or host names
// resolved when the edge starts and again every trustRefresh; TLS peers may instead be
// trusted by the names of their certificates.

// trustRefresh is how often host names of the trust domain are resolved again: a DNS
// change reaches the edge within a minute, and no request waits for DNS.
const trustRefresh = time.Minute

// trustLookupTimeout bounds one resolution of a trusted host name.
const trustLookupTimeout = 5 * time.Second

// trustSet is one resolution of the trust domain.
type trustSet struct {
	prefixes []netip.Prefix
	addrs    map[netip.Addr]bool
}

func (s *trustSet) contains(a netip.Addr) bool {
	a = a.Unmap()
	if s.addrs[a] {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// trust is the trust domain: the configured entries and their latest resolution.
type trust struct {
	prefixes []netip.Prefix // literal addresses (as /32 or /128) and CIDR prefixes
	hosts    []string       // names, resolved by refresh
	names    []string       // TLS peer names
	cur      atomic.Pointer[trustSet]
}

// newTrust parses the entries: "10.0.0.5", "10.0.0.0/24", "[2001:db8::1]:5060",
// "cscf.example.net" or "cscf.example.net:5060" (a port is ignored: a peer may send from
// other ports than it listens on, and over TCP from ephemeral ones).
func newTrust(entries, names []string) (*trust, error) {
	t := &trust{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			t.prefixes = append(t.prefixes, p.Masked())
			continue
		}
		host := e
		if h, _, err := net.SplitHostPort(e); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		if a, err := netip.ParseAddr(host); err == nil {
			a = a.Unmap()
			t.prefixes = append(t.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		if host == "" || strings.ContainsAny(host, "/ ") {
			return nil, fmt.Errorf("%w: trusted peer %q is no address, prefix or host name", ErrConfig, e)
		}
		t.hosts = append(t.hosts, host)
	}
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			t.names = append(t.names, n)
		}
	}
	t.cur.Store(&trustSet{prefixes: t.prefixes})
	return t, nil
}

// contains reports whether a is in the trust domain.
func (t *trust) contains(a netip.Addr) bool { return t.cur.Load().contains(a) }

// refresh resolves the host names again. A name that does not resolve keeps the
// addresses it had: a DNS outage must not cut the gateway off from its CSCF.
func (t *trust) refresh(ctx context.Context, log *slog.Logger) {
	if len(t.hosts) == 0 {
		return
	}
	old := t.cur.Load()
	set := &trustSet{prefixes: t.prefixes, addrs: map[netip.Addr]bool{}}
	for _, h := range t.hosts {
		lctx, cancel := context.WithTimeout(ctx, trustLookupTimeout)
		addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", h)
		cancel()
		if err != nil {
			log.Warn("resolve a trusted peer failed; keeping its last addresses", "host", h, "err", err)
			for a := range old.addrs {
				set.addrs[a] = true // the previous set: which name each came from is not kept
			}
			continue
		}
		for _, a := range addrs {
			set.addrs[a.Unmap()] = true
		}
	}
	t.cur.Store(set)
}

// trustedCert reports whether a verified peer certificate names one of the trusted TLS
// peer names (a DNS subject alternative name, wildcards as in a server certificate).
func (t *trust) trustedCert(c *x509.Certificate) bool {
	for _, n := range t.names {
		if c.VerifyHostname(n) == nil {
			return true
		}
	}
	return false
}
