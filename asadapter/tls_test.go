package asadapter

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// testCert is a self-signed certificate for 127.0.0.1, written as PEM files; being its
// own authority, its certificate file is also the root CA file of whoever trusts it.
type testCert struct {
	certFile, keyFile string
	pool              *x509.CertPool
	tls               tls.Certificate
}

func newTestCert(t *testing.T) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dsmgw test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := &testCert{certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem")}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(c.certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if c.tls, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	c.pool = x509.NewCertPool()
	c.pool.AppendCertsFromPEM(certPEM)
	return c
}

// tlsConfig starts an adapter listening on TLS with cert, trusting it for outgoing TLS.
func tlsConfig(cert *testCert) func(*Config) {
	return func(c *Config) {
		c.ListenTLS, c.TLSCert, c.TLSKey, c.TLSRootCAs = "127.0.0.1:0", cert.certFile, cert.keyFile, cert.certFile
	}
}

// tlsRelay terminates TLS and pipes each connection's bytes to a TCP peer: it puts a TLS
// front on sipp, which Debian builds without TLS. Only completed handshakes get through.
type tlsRelay struct {
	ln         net.Listener
	port       int
	handshakes atomic.Int64
	wg         sync.WaitGroup
	mu         sync.Mutex // guards conns
	conns      []net.Conn
}

func startTLSRelay(t *testing.T, cert *testCert, to func() string) *tlsRelay {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert.tls},
		MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRelay{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.pipe(c.(*tls.Conn), to())
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *tlsRelay) pipe(c *tls.Conn, peer string) {
	defer c.Close()
	if err := c.Handshake(); err != nil {
		return
	}
	r.handshakes.Add(1)
	p, err := net.Dial("tcp", peer)
	if err != nil {
		return
	}
	defer p.Close()
	r.mu.Lock()
	r.conns = append(r.conns, c, p)
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(p, c)
		p.Close()
	}()
	_, _ = io.Copy(c, p)
	c.Close()
	<-done
}

func TestTLSOptionsAnswered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cert := newTestCert(t)
	i := e.adapter("gw1", tlsConfig(cert))
	addr := i.a.Addr("tls")
	if addr == "" {
		t.Fatal("no TLS listener")
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr,
		&tls.Config{RootCAs: cert.pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS handshake with the adapter (its certificate must verify): %v", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitFor)); err != nil {
		t.Fatal(err)
	}
	local := conn.LocalAddr().String()
	req := strings.Join([]string{
		"OPTIONS sip:dsmgw@" + addr + ";transport=tls SIP/2.0",
		"Via: SIP/2.0/TLS " + local + ";branch=z9hG4bK-tls-options-1;rport",
		"Max-Forwards: 70",
		"From: <sip:tester@127.0.0.1>;tag=tlstester",
		"To: <sip:dsmgw@127.0.0.1>",
		"Call-ID: tls-options-1@127.0.0.1",
		"CSeq: 1 OPTIONS",
		"Contact: <sips:tester@" + local + ";transport=tls>",
		"Content-Length: 0", "", ""}, "\r\n")
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	tp := textproto.NewReader(bufio.NewReader(conn))
	status, err := tp.ReadLine()
	if err != nil {
		t.Fatalf("read the OPTIONS response: %v", err)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("read the OPTIONS response headers: %v", err)
	}
	if !strings.HasPrefix(status, "SIP/2.0 200 ") || hdr.Get("Call-Id") != "tls-options-1@127.0.0.1" ||
		!strings.Contains(hdr.Get("Allow"), "INVITE") || !strings.Contains(hdr.Get("Via"), "SIP/2.0/TLS") {
		t.Fatalf("OPTIONS over TLS answered %q %v", status, hdr)
	}
}

func TestTLSCallToSipp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cert := newTestCert(t)
	var sippAddr atomic.Value // set before the adapter dials: the relay reads it on accept
	relay := startTLSRelay(t, cert, func() string { return sippAddr.Load().(string) })
	path, _ := filepath.Abs("testdata/tls_answer.xml")
	s := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, Transport: "t1", RTPEcho: true,
		Args: []string{"-m", "1", "-key", "relayport", strconv.Itoa(relay.port)}})
	sippAddr.Store(s.Addr) // StartSipp returned once sipp listens
	e.adapter("gw1", tlsConfig(cert))
	p := "players/secure/audio"
	e.dial(p, fmt.Sprintf("sip:service@127.0.0.1:%d;transport=tls", relay.port))
	fl := e.waitField(p, "mgw_state", "connected")
	if fl["mgw_url"] == "" || fl["sip_status"] != "200" {
		t.Fatalf("call over TLS: %v", fl)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
	waitSipp(t, s) // its checks fail the call unless INVITE and BYE came with a TLS Via
	if relay.handshakes.Load() == 0 {
		t.Fatal("no TLS handshake at the relay")
	}
	e.checkGone(p)
}

// TestTLSUntrustedServerFails: without the server's authority among the trusted ones, the
// handshake fails and the call fails instead of going out unauthenticated.
func TestTLSUntrustedServerFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cert, other := newTestCert(t), newTestCert(t)
	relay := startTLSRelay(t, cert, func() string { return "127.0.0.1:1" })
	e.adapter("gw1", tlsConfig(other))
	p := "players/mitm/audio"
	e.dial(p, fmt.Sprintf("sip:service@127.0.0.1:%d;transport=tls", relay.port))
	fl := e.waitField(p, "mgw_state", "failed")
	if fl["player_state"] != "failed" {
		t.Fatalf("call to an untrusted TLS server: %v", fl)
	}
	if n := relay.handshakes.Load(); n != 0 {
		t.Fatalf("%d handshakes completed with an untrusted certificate", n)
	}
	e.checkGone(p)
}
