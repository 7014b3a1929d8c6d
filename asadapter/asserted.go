package asadapter

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// The caller id of an incoming call: From, unless the CSCF asserted the caller's identity.
// P-Asserted-Identity (RFC 3325) is believed only from within the trust domain, which for
// the gateway is its outbound proxy: a request whose source address is one of the proxy
// host's addresses. Anyone else can write any P-Asserted-Identity. (A configured trust
// domain of several hosts is for the SIP edge to add.)

// proxyAddrsTTL is how long the outbound proxy's resolved addresses are used before the
// name is resolved again: a DNS change reaches us within a minute, and an incoming INVITE
// waits for DNS at most once a minute.
const proxyAddrsTTL = time.Minute

// proxyLookupTimeout bounds one resolution of the proxy's name on the call path.
const proxyLookupTimeout = 2 * time.Second

// proxyAddrs caches the outbound proxy's addresses.
type proxyAddrs struct {
	mu  sync.Mutex // guards ips and at
	ips map[string]bool
	at  time.Time // when ips was resolved (zero: never)
}

// fromOutboundProxy reports whether req was sent from one of the outbound proxy's
// addresses (the port is not compared: a proxy may send from other ports than it listens
// on, and over TCP from ephemeral ones).
func (a *Adapter) fromOutboundProxy(ctx context.Context, req *sip.Request) bool {
	if a.cfg.OutboundProxy == "" {
		return false
	}
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return false
	}
	src := net.ParseIP(host)
	if src == nil {
		return false
	}
	p := &a.proxy
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at.IsZero() || time.Since(p.at) > proxyAddrsTTL {
		p.ips, p.at = a.resolveProxy(ctx), time.Now()
	}
	return p.ips[src.String()]
}

// resolveProxy returns the addresses of the outbound proxy's host (none when it does not
// resolve: nothing is trusted until it does).
func (a *Adapter) resolveProxy(ctx context.Context) map[string]bool {
	var u sip.Uri
	if err := sip.ParseUri(a.cfg.OutboundProxy, &u); err != nil {
		return nil
	}
	host := strings.Trim(u.Host, "[]")
	if ip := net.ParseIP(host); ip != nil {
		return map[string]bool{ip.String(): true}
	}
	ctx, cancel := context.WithTimeout(ctx, proxyLookupTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		a.log.Warn("resolve the outbound proxy failed; no P-Asserted-Identity is trusted until it resolves", "host", host, "err", err)
		return nil
	}
	ips := make(map[string]bool, len(addrs))
	for _, s := range addrs {
		if ip := net.ParseIP(s); ip != nil {
			ips[ip.String()] = true
		}
	}
	return ips
}

// assertedIdentity returns the first sip: or sips: identity of req's P-Asserted-Identity
// headers (a header may hold a SIP URI and a tel URI, RFC 3325 section 9.1), with its
// display name.
func assertedIdentity(req *sip.Request) (display string, uri sip.Uri, ok bool) {
	for _, h := range req.GetHeaders("P-Asserted-Identity") {
		for _, v := range splitHeaderList(h.Value()) {
			v = strings.TrimSpace(v)
			if v == "" || strings.ContainsAny(v, "\r\n") {
				continue
			}
			var u sip.Uri
			params := sip.NewParams()
			name, err := sip.ParseAddressValue(v, &u, &params)
			if err != nil || (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
				continue
			}
			return name, sip.Uri{Scheme: u.Scheme, User: u.User, Host: u.Host, Port: u.Port}, true
		}
	}
	return "", sip.Uri{}, false
}

// callerOf returns the caller id of an incoming INVITE: the asserted identity when the
// outbound proxy sent it, else From.
func (a *Adapter) callerOf(ctx context.Context, req *sip.Request) (display string, uri sip.Uri) {
	if d, u, ok := assertedIdentity(req); ok && a.fromOutboundProxy(ctx, req) {
		return d, u
	}
	return req.From().DisplayName, req.From().Address
}
