package asadapter

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/store"
)

// clientCert issues a client certificate for name, signed by ca (whose certificate is a
// CA).
func clientCert(t *testing.T, ca *testCert, name string) tls.Certificate {
	t.Helper()
	caCert, err := x509.ParseCertificate(ca.tls.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{name}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.tls.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsPeer is a SIP peer on one TLS connection to the adapter.
type tlsPeer struct {
	conn *tls.Conn
	r    *textproto.Reader
}

// dialTLS connects to addr presenting certs (none: no client certificate).
func dialTLS(t *testing.T, addr string, roots *x509.CertPool, certs ...tls.Certificate) (*tlsPeer, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitFor}, "tcp", addr,
		&tls.Config{RootCAs: roots, Certificates: certs, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(waitFor))
	return &tlsPeer{conn: conn, r: textproto.NewReader(bufio.NewReader(conn))}, nil
}

// request sends a request (lines without their CRLF; LOCAL is the connection's address)
// and returns the status line of the first final response.
func (p *tlsPeer) request(t *testing.T, lines ...string) string {
	t.Helper()
	msg := strings.ReplaceAll(strings.Join(append(lines, "", ""), "\r\n"), "LOCAL", p.conn.LocalAddr().String())
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	for {
		status, err := p.r.ReadLine()
		if err != nil {
			t.Fatalf("read a response: %v", err)
		}
		if _, err := p.r.ReadMIMEHeader(); err != nil {
			t.Fatalf("read a response's headers: %v", err)
		}
		if !strings.HasPrefix(status, "SIP/2.0 1") {
			return status
		}
	}
}

// optionsOver sends OPTIONS with callID over p and returns the status line.
func optionsOver(t *testing.T, p *tlsPeer, callID string) string {
	return p.request(t, "OPTIONS sip:dsmgw@127.0.0.1;transport=tls SIP/2.0",
		"Via: SIP/2.0/TLS LOCAL;branch=z9hG4bK-"+callID, "Max-Forwards: 70",
		"From: <sip:peer@127.0.0.1>;tag="+callID, "To: <sip:dsmgw@127.0.0.1>",
		"Call-ID: "+callID, "CSeq: 1 OPTIONS", "Content-Length: 0")
}

// TestMutualTLSTrustByCertificate: with client CAs and trusted TLS peer names, a TLS
// connection is trusted by its client certificate, not its address: the CSCF's
// certificate (cscf.test) gets its OPTIONS answered and its asserted identity shown on
// the page; another certificate of the same CA, or none, from the same address, is
// refused at the edge; a certificate of another CA fails the handshake.
func TestMutualTLSTrustByCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("tlsuser", "tlsusercl")
	ca := newTestCert(t)
	i := e.adapter("gw1", func(c *Config) {
		tlsConfig(ca)(c)
		c.TLSClientCAs = ca.certFile
		c.Edge.TrustedNames = []string{"cscf.test"}
	})
	addr := i.a.Addr("tls")

	cscf, err := dialTLS(t, addr, ca.pool, clientCert(t, ca, "cscf.test"))
	if err != nil {
		t.Fatal(err)
	}
	if got := optionsOver(t, cscf, "mtls-cscf"); !strings.HasPrefix(got, "SIP/2.0 200") {
		t.Fatalf("OPTIONS of the CSCF's certificate: %q", got)
	}
	for name, certs := range map[string][]tls.Certificate{
		"another name":          {clientCert(t, ca, "evil.test")},
		"no client certificate": nil,
	} {
		p, err := dialTLS(t, addr, ca.pool, certs...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := optionsOver(t, p, "mtls-"+strings.ReplaceAll(name, " ", "-")); got != "SIP/2.0 403 Forbidden" {
			t.Fatalf("%s: OPTIONS answered %q, want 403 from the edge", name, got)
		}
	}
	other := newTestCert(t)
	if p, err := dialTLS(t, addr, ca.pool, clientCert(t, other, "cscf.test")); err == nil {
		// TLS 1.3 reports the server's refusal of a client certificate on the first read.
		msg := "OPTIONS sip:dsmgw@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"
		_, _ = p.conn.Write([]byte(msg))
		if line, err := p.r.ReadLine(); err == nil {
			t.Fatalf("a certificate of another CA was accepted: %q", line)
		}
	}

	// The CSCF's INVITE over its connection rings the page with the identity it asserts.
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n"
	msg := strings.Join([]string{"INVITE sip:tlsuser@" + addr + ";transport=tls SIP/2.0",
		"Via: SIP/2.0/TLS LOCAL;branch=z9hG4bK-mtls-invite", "Max-Forwards: 70",
		"From: <sip:caller@ims.test>;tag=mtls-invite", "To: <sip:tlsuser@ims.test>",
		"Call-ID: mtls-invite", "CSeq: 1 INVITE", "Contact: <sips:caller@LOCAL;transport=tls>",
		`P-Asserted-Identity: "Asserted Carol" <sip:carol@ims.test>`,
		"Content-Type: application/sdp", "Content-Length: " + strconv.Itoa(len(sdp)), "", sdp}, "\r\n")
	if _, err := cscf.conn.Write([]byte(strings.ReplaceAll(msg, "LOCAL", cscf.conn.LocalAddr().String()))); err != nil {
		t.Fatal(err)
	}
	p := "players/tlsusercl/audio"
	fl := e.waitField(p, "player_state", "ringing")
	if want := "Asserted Carol <sip:carol@ims.test>"; fl["caller"] != want {
		t.Fatalf("caller %q over mutual TLS, want %q", fl["caller"], want)
	}
	e.browser(p, store.Set("player_state", "disconnected"))
	e.waitField(p, "mgw_state", "disconnected")
}
