// Package siptest is a small SIP port for tests: a sipgo user agent on a private UDP
// listener that routes through an optional outbound proxy, as the call controller does.
// The users side's tests send through it so they do not depend on call control, and the
// wiring tests use it as a probe through a proxy.
package siptest

import (
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/sipport"
)

// serveWait bounds how long New waits for sipgo's transport layer to take the listener
// (it normally does so within a millisecond).
const serveWait = 5 * time.Second

// Port is a SIP port on 127.0.0.1 for one test. It implements sipport.Port.
type Port struct {
	ua    *sipgo.UserAgent
	cli   *sipgo.Client
	srv   *sipgo.Server
	conn  net.PacketConn
	port  int
	proxy string // "host:port" or ""
	// notify is the NOTIFY handler, set after the server is serving (hence atomic).
	notify atomic.Pointer[sipgo.RequestHandler]
}

var _ sipport.Port = (*Port)(nil)

// New starts a port that sends through proxy ("host:port"; "" sends directly). The test's
// cleanup closes it and waits for its serving goroutine.
func New(t testing.TB, proxy string) *Port {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(quiet), sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Port{ua: ua, cli: cli, srv: srv, conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port, proxy: proxy}
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		if h := p.notify.Load(); h != nil {
			(*h)(req, tx)
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Subscriptions Here", nil))
	})
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.ServeUDP(conn) }()
	t.Cleanup(func() { conn.Close(); ua.Close(); <-served })
	// Requests bound to the listener fail until the transport layer has it (it would try
	// to bind the port a second time), so wait for it.
	for deadline := time.Now().Add(serveWait); ; time.Sleep(time.Millisecond) {
		if c, err := ua.TransportLayer().GetConnection("udp", conn.LocalAddr().String()); err == nil && c != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sipgo did not take the UDP listener")
		}
	}
	return p
}

// SIP implements sipport.Port.
func (p *Port) SIP() (*sipgo.UserAgent, *sipgo.Client) { return p.ua, p.cli }

// Client is the client requests of the test go out with.
func (p *Port) Client() *sipgo.Client { return p.cli }

// LocalPort is the UDP port the port listens on.
func (p *Port) LocalPort() int { return p.port }

// OnNotify routes NOTIFY requests to h (before, they are answered 481).
func (p *Port) OnNotify(h sipgo.RequestHandler) { p.notify.Store(&h) }

// ContactURI implements sipport.Port (every transport is our UDP listener).
func (p *Port) ContactURI(user, _ string) sip.Uri {
	return sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: p.port}
}

// PrepareRequest implements sipport.Port: the proxy as a loose route unless the request
// has routes, our Via, and the listener as the source.
func (p *Port) PrepareRequest(req *sip.Request) {
	if req.Route() == nil && p.proxy != "" {
		var u sip.Uri
		_ = sip.ParseUri("sip:"+p.proxy+";lr", &u)
		req.PrependHeader(&sip.RouteHeader{Address: u})
	}
	req.RemoveHeader("Via")
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: p.port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.PrependHeader(via)
	req.Laddr = sip.Addr{IP: net.ParseIP("127.0.0.1"), Port: p.port, Hostname: "127.0.0.1"}
}
