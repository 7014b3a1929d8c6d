package asadapter

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"dsmgw/asadapter/edge"
)

// The SIP edge in the request path (package edge holds the rules). The UDP listener sipgo
// serves is wrapped (edgePacketConn): its reads are decided on before sipgo sees them, so
// a dropped datagram costs one read and a look-up, and nothing of sipgo (no address
// object, no goroutine). sipgo hands every other read, before parsing it, to readFilter:
// a datagram of a socket sipgo opened itself, or a stream's bytes, which go through the
// edge.Stream of their connection. Stateless answers leave on the socket the request came
// in on: the UDP listener, or the accepted stream connection, which the listener wrapper
// (edgeListener) registers; a connection sipgo dialed itself (to the CSCF, or a peer we
// called) gets no answer from the edge, only its verdict. Bounds that need the parsed
// request (requests in progress, calls) are applied in the handlers: owned and onInvite.

// streamSweep is how often the edge state of connections sipgo dialed is swept, and how
// long such a connection may stay idle in the middle of a message before its partial
// message is forgotten (sipgo gives no word when it closes one).
const streamSweep = 5 * time.Minute

// connKey names a stream connection by its two ends.
type connKey struct{ local, remote netip.AddrPort }

// edgeConn is the edge's state of one stream connection. Its fields are set once, when
// the connection is accepted or first read; stream is used only by the connection's
// reader.
type edgeConn struct {
	conn    net.Conn  // where answers go; nil for a connection sipgo dialed
	tls     *tls.Conn // an accepted TLS connection, for its peer certificate
	decided bool      // trusted is known (after the TLS handshake, on the first read)
	trusted bool
	stream  *edge.Stream // nil for a trusted connection
	seen    time.Time    // last read, for the sweep of dialed connections
}

// edgeConns are the stream connections the edge knows.
type edgeConns struct {
	mu      sync.Mutex // guards m and tlsPeer
	m       map[connKey]*edgeConn
	tlsPeer map[netip.AddrPort]bool // remote end of an accepted TLS connection → trusted (handlers ask)
}

// newEdge builds the adapter's edge: the configured trust domain plus the outbound
// proxy's host.
func (a *Adapter) newEdge(reg prometheus.Registerer, log *slog.Logger) error {
	ecfg := a.cfg.Edge
	ecfg.Trusted = append([]string(nil), ecfg.Trusted...)
	if a.cfg.OutboundProxy != "" {
		var u sip.Uri
		if err := sip.ParseUri(a.cfg.OutboundProxy, &u); err == nil && u.Host != "" {
			ecfg.Trusted = append(ecfg.Trusted, strings.Trim(u.Host, "[]"))
		}
	}
	e, err := edge.New(ecfg, a, reg, log.With("instance", a.cfg.Instance))
	if err != nil {
		return fmt.Errorf("asadapter: %w", err)
	}
	a.edge = e
	a.conns = &edgeConns{m: map[connKey]*edgeConn{}, tlsPeer: map[netip.AddrPort]bool{}}
	return nil
}

// readFilter is sipgo's transport read filter: it returns what sipgo parses of data
// (nothing drops it). It returns an error only to have a stream connection closed; a
// UDP listener would stop on one.
func (a *Adapter) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	if strings.EqualFold(p.Transport, "udp") {
		ra, ok := p.RemoteAddr.(*net.UDPAddr)
		if !ok {
			return nil, nil
		}
		if a.tp.isListener(p.LocalAddr) {
			return data, nil // decided on by edgePacketConn
		}
		// A socket sipgo opened itself: the edge's verdict, no answer from it.
		return a.edge.Datagram(ra.AddrPort(), data, nil), nil
	}
	key := connKey{addrPort(p.LocalAddr), addrPort(p.RemoteAddr)}
	c := a.conns.get(key)
	if !c.decided {
		a.decideConn(key, c, p.Transport)
	}
	if c.trusted {
		return data, nil
	}
	var reply func([]byte)
	if c.conn != nil {
		reply = func(ans []byte) { _, _ = c.conn.Write(ans) }
	}
	out, err := c.stream.Feed(data, reply)
	if err != nil {
		a.log.Debug("closing a stream the SIP edge cannot frame", "remote", key.remote, "err", err)
	}
	return out, err
}

// edgePacketConn is the UDP listener as sipgo reads it: only what the edge lets through.
type edgePacketConn struct {
	*net.UDPConn
	edge *edge.Edge
}

// ReadFrom returns the next datagram the edge lets through (without its identity headers
// when it came from outside the trust domain), after answering or dropping the others.
func (c *edgePacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, ap, err := c.ReadFromUDPAddrPort(p)
		if err != nil {
			return n, nil, err
		}
		out := c.edge.Datagram(ap, p[:n], func(ans []byte) { _, _ = c.WriteToUDPAddrPort(ans, ap) })
		if out == nil {
			continue
		}
		n = copy(p, out) // a stripped copy is shorter than what was read
		return n, net.UDPAddrFromAddrPort(ap), nil
	}
}

// isListener reports whether a is our UDP listener's address.
func (t *transports) isListener(a net.Addr) bool {
	la, ok := a.(*net.UDPAddr)
	if !ok || t.udp == nil {
		return false
	}
	ours := t.udp.LocalAddr().(*net.UDPAddr)
	return la.Port == ours.Port && la.IP.Equal(ours.IP)
}

// decideConn decides once whether a stream connection is trusted: by its peer
// certificate for an accepted TLS connection when TLS peer names are configured, else by
// its address.
func (a *Adapter) decideConn(key connKey, c *edgeConn, transport string) {
	trusted := a.edge.TrustedAddr(key.remote.Addr())
	if c.tls != nil && a.edge.TrustByCertificate() {
		cs := c.tls.ConnectionState()
		trusted = len(cs.PeerCertificates) > 0 && a.edge.TrustedCert(cs.PeerCertificates[0])
		a.conns.mu.Lock()
		a.conns.tlsPeer[key.remote] = trusted
		a.conns.mu.Unlock()
	}
	c.trusted, c.decided = trusted, true
	if !trusted {
		c.stream = a.edge.NewStream(key.remote.Addr())
	}
	if c.tls != nil {
		a.log.Debug("TLS peer", "remote", key.remote, "trusted", trusted, "transport", transport)
	}
}

// get returns the state of a connection, creating it for one sipgo dialed.
func (s *edgeConns) get(k connKey) *edgeConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.m[k]
	if c == nil {
		c = &edgeConn{}
		s.m[k] = c
	}
	c.seen = time.Now()
	return c
}

// sweep forgets dialed connections idle for streamSweep (accepted ones leave when they
// close).
func (s *edgeConns) sweep(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.m {
		if c.conn == nil && now.Sub(c.seen) > streamSweep {
			delete(s.m, k)
		}
	}
}

// trustedTLSPeer reports whether the accepted TLS connection from remote was trusted by
// its certificate; known is false when there is no such connection.
func (s *edgeConns) trustedTLSPeer(remote netip.AddrPort) (trusted, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	trusted, known = s.tlsPeer[remote]
	return trusted, known
}

// edgeListener registers the connections it accepts with the edge and bounds those of
// each untrusted source.
type edgeListener struct {
	net.Listener
	a *Adapter
}

// Accept returns the next connection the edge lets in; a connection over its source's
// bound is closed at once and the next one awaited.
func (l *edgeListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := connKey{addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())}
		release := func() {}
		if !l.a.edge.TrustedAddr(key.remote.Addr()) {
			r, ok := l.a.edge.OpenConn(key.remote.Addr())
			if !ok {
				_ = c.Close()
				continue
			}
			release = r
		}
		ec := &edgeConn{conn: c, seen: time.Now()}
		ec.tls, _ = c.(*tls.Conn)
		s := l.a.conns
		s.mu.Lock()
		s.m[key] = ec
		s.mu.Unlock()
		return &edgeNetConn{Conn: c, closed: func() {
			s.mu.Lock()
			if s.m[key] == ec {
				delete(s.m, key)
			}
			delete(s.tlsPeer, key.remote)
			s.mu.Unlock()
			release()
		}}, nil
	}
}

// edgeNetConn is an accepted connection that leaves the edge's tables when closed.
type edgeNetConn struct {
	net.Conn
	once   sync.Once
	closed func()
}

// Close closes the connection; the edge forgets it once, however often Close is called.
func (c *edgeNetConn) Close() error {
	c.once.Do(c.closed)
	return c.Conn.Close()
}

// addrPort returns the address and port of a TCP or UDP address (zero for others).
func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// edgeLoop runs the edge (trust refresh, summaries) and sweeps dialed connections.
func (a *Adapter) edgeLoop(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); _ = a.edge.Run(ctx) }()
	t := time.NewTicker(streamSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			return nil
		case now := <-t.C:
			a.conns.sweep(now)
		}
	}
}
