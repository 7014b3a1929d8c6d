package asadapter

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"golang.org/x/sync/errgroup"

	"dsmgw/asadapter/sipport"
)

// The users side sends and receives through the adapter's listeners.
var _ sipport.Port = (*Adapter)(nil)

// udpReadBuffer is the UDP listener's socket receive buffer: 4 MiB absorbs a burst of
// some two thousand datagrams while the reader is busy (the default, about 200 KiB, holds
// a hundred; sipp and Kamailio ask for as much). The kernel caps it at net.core.rmem_max.
const udpReadBuffer = 4 << 20

// transports holds the listeners bound by New and what we advertise for each transport.
type transports struct {
	udp     net.PacketConn
	tcp     net.Listener
	tls     net.Listener
	host    string         // advertised host
	ports   map[string]int // "udp"/"tcp"/"tls" → bound port
	laddrs  map[string]string
	closers []func() error
}

func (t *transports) serve(g *errgroup.Group, srv *sipgo.Server) {
	if t.udp != nil {
		g.Go(func() error { _ = srv.ServeUDP(t.udp); return nil })
	}
	if t.tcp != nil {
		g.Go(func() error { _ = srv.ServeTCP(t.tcp); return nil })
	}
	if t.tls != nil {
		g.Go(func() error { _ = srv.ServeTLS(t.tls); return nil })
	}
}

func (t *transports) close() {
	for _, c := range t.closers {
		_ = c()
	}
}

// startUA builds the sipgo user agent, server and client, binds the listeners and
// registers the call-control handlers. base is the logger New was given: sipgo's lines
// carry their own component key.
func (a *Adapter) startUA(base *slog.Logger) error {
	sipLog := base.With("component", "sipgo", "instance", a.cfg.Instance)
	if !a.cfg.SIPLog {
		// sipgo logs every unparsable datagram at error level with its content; the
		// adapter counts them instead, so its own log stays readable under attack.
		sipLog = slog.New(slog.DiscardHandler)
	}
	opts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(a.cfg.User),
		sipgo.WithUserAgentHostname(a.cfg.Domain),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(a.onStrayResponse),
		),
		// Every read passes the SIP edge before sipgo parses it (edge_hook.go).
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog),
			sip.WithTransportLayerReadFilter(a.readFilter)),
	}
	tlsConf, err := a.tlsConfig()
	if err != nil {
		return err
	}
	if tlsConf != nil {
		// The same configuration serves our listener and verifies the servers we dial.
		opts = append(opts, sipgo.WithUserAgenTLSConfig(tlsConf))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return fmt.Errorf("asadapter: user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		ua.Close()
		return fmt.Errorf("asadapter: sip server: %w", err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog), sipgo.WithClientHostname(a.cfg.AdvertiseHost))
	if err != nil {
		ua.Close()
		return fmt.Errorf("asadapter: sip client: %w", err)
	}
	a.ua, a.srv, a.cli = ua, srv, cli
	t := &transports{host: a.cfg.AdvertiseHost, ports: map[string]int{}, laddrs: map[string]string{}}
	fail := func(err error) error { t.close(); ua.Close(); return err }
	if a.cfg.ListenUDP != "" {
		c, err := net.ListenPacket("udp", a.cfg.ListenUDP)
		if err != nil {
			return fail(fmt.Errorf("asadapter: listen udp %s: %w", a.cfg.ListenUDP, err))
		}
		if uc, ok := c.(*net.UDPConn); ok {
			_ = uc.SetReadBuffer(udpReadBuffer) // best effort: the kernel caps it
			c = &edgePacketConn{UDPConn: uc, edge: a.edge}
		}
		t.udp = c
		t.closers = append(t.closers, c.Close)
		t.laddrs["udp"] = c.LocalAddr().String()
		t.ports["udp"] = c.LocalAddr().(*net.UDPAddr).Port
	}
	if a.cfg.ListenTCP != "" {
		l, err := net.Listen("tcp", a.cfg.ListenTCP)
		if err != nil {
			return fail(fmt.Errorf("asadapter: listen tcp %s: %w", a.cfg.ListenTCP, err))
		}
		t.tcp = &edgeListener{Listener: l, a: a}
		t.closers = append(t.closers, l.Close)
		t.laddrs["tcp"] = l.Addr().String()
		t.ports["tcp"] = l.Addr().(*net.TCPAddr).Port
	}
	if a.cfg.ListenTLS != "" {
		l, err := tls.Listen("tcp", a.cfg.ListenTLS, tlsConf)
		if err != nil {
			return fail(fmt.Errorf("asadapter: listen tls %s: %w", a.cfg.ListenTLS, err))
		}
		t.tls = &edgeListener{Listener: l, a: a}
		t.closers = append(t.closers, l.Close)
		t.laddrs["tls"] = l.Addr().String()
		t.ports["tls"] = l.Addr().(*net.TCPAddr).Port
	}
	a.tp = t
	a.registerHandlers()
	return nil
}

// tlsConfig builds the TLS configuration: our certificate for the listener and the
// trusted authorities for outgoing connections; nil when neither is configured.
func (a *Adapter) tlsConfig() (*tls.Config, error) {
	if a.cfg.ListenTLS == "" && a.cfg.TLSRootCAs == "" {
		return nil, nil
	}
	// TLS 1.2 is the floor RFC 8996 and the 3GPP TLS profile (TS 33.310) allow.
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.cfg.ListenTLS != "" {
		cert, err := tls.LoadX509KeyPair(a.cfg.TLSCert, a.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("asadapter: load TLS certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if a.cfg.TLSClientCAs != "" {
		pem, err := os.ReadFile(a.cfg.TLSClientCAs)
		if err != nil {
			return nil, fmt.Errorf("asadapter: read TLS client CAs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLSClientCAs %s holds no PEM certificate", ErrConfig, a.cfg.TLSClientCAs)
		}
		// A certificate is asked for, and one given must verify; a peer without one is
		// served as untrusted (the edge then trusts it by nothing but credentials).
		conf.ClientCAs, conf.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	if a.cfg.TLSRootCAs != "" {
		pem, err := os.ReadFile(a.cfg.TLSRootCAs)
		if err != nil {
			return nil, fmt.Errorf("asadapter: read TLS root CAs: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: TLSRootCAs %s holds no PEM certificate", ErrConfig, a.cfg.TLSRootCAs)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}

// Addr returns the bound address of a listener ("udp", "tcp", "tls"), or "" when that
// transport is not enabled.
func (a *Adapter) Addr(transport string) string {
	p, ok := a.tp.ports[strings.ToLower(transport)]
	if !ok {
		return ""
	}
	return net.JoinHostPort(a.tp.host, strconv.Itoa(p))
}

// ContactURI returns our Contact URI for a transport ("udp", "tcp", "tls"), with user.
func (a *Adapter) ContactURI(user, transport string) sip.Uri {
	transport = strings.ToLower(transport)
	u := sip.Uri{Scheme: "sip", User: user, Host: a.tp.host, Port: a.tp.ports[transport]}
	if transport == "tls" {
		u.Scheme = "sips"
	}
	if transport != "udp" && transport != "" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", transport)
	}
	return u
}

// proxyRoute returns the outbound proxy as a loose Route header, or nil.
func (a *Adapter) proxyRoute() *sip.RouteHeader {
	if a.cfg.OutboundProxy == "" {
		return nil
	}
	var u sip.Uri
	if err := sip.ParseUri(a.cfg.OutboundProxy, &u); err != nil {
		return nil // checked by fill
	}
	if u.UriParams == nil {
		u.UriParams = sip.NewParams()
	}
	if !u.UriParams.Has("lr") {
		u.UriParams.Add("lr", "")
	}
	return &sip.RouteHeader{Address: u}
}

// PrepareRequest readies an out-of-dialog request built by the caller (REGISTER,
// SUBSCRIBE, INVITE ...): it adds the outbound proxy as a pre-loaded Route unless the
// request has routes, a Via with our advertised address and the transport the request
// will use, and binds UDP requests to our listener so responses and later requests come
// back to it. Call it once per transaction (a digest retry gets a new Via from sipgo).
func (a *Adapter) PrepareRequest(req *sip.Request) {
	if req.Route() == nil {
		if r := a.proxyRoute(); r != nil {
			req.PrependHeader(r)
		}
	}
	a.addVia(req)
}

// addVia adds our Via (transport from the next hop) and sets the request's source.
func (a *Adapter) addVia(req *sip.Request) {
	req.RemoveHeader("Via")
	tp := strings.ToLower(nextHopTransport(req))
	via := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(tp),
		Host: a.tp.host, Port: a.tp.ports[tp], Params: sip.NewParams(),
	}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	a.setSource(req)
}

// setSource binds a request over UDP to our listener, so responses and later requests
// come back to it. Over a stream transport sipgo dials from an ephemeral port (and reuses
// the connection), so the source is cleared: one left from a first hop over UDP (before
// the proxy route was added) would bind the TCP socket to the UDP listener's port number,
// which another socket may hold.
func (a *Adapter) setSource(req *sip.Request) {
	req.Laddr = sip.Addr{}
	if !strings.EqualFold(nextHopTransport(req), "udp") {
		return
	}
	if la, ok := a.tp.laddrs["udp"]; ok {
		host, port, err := sip.ParseAddr(la)
		if err == nil {
			req.Laddr = sip.Addr{IP: net.ParseIP(host), Port: port, Hostname: host}
		}
	}
}

// nextHopTransport is the transport toward the first Route or the request URI.
func nextHopTransport(req *sip.Request) string {
	u := req.Recipient
	if r := req.Route(); r != nil {
		u = r.Address
	}
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		return strings.ToUpper(t)
	}
	if u.Scheme == "sips" {
		return "TLS"
	}
	return "UDP"
}

// contactHeader is our Contact for a request that goes out on transport.
func (a *Adapter) contactHeader(transport string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: a.ContactURI(a.cfg.User, transport)}
}
