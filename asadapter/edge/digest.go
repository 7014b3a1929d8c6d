package edge

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/icholy/digest"
)

// Direct peers: an operator who lets phones or servers outside the trust domain call the
// gateway gives them digest credentials (RFC 3261 section 22.4). Their out-of-dialog
// requests are challenged with 401 and pass once they answer it; they stay outside the
// trust domain (their identity headers are removed, the per-source bounds apply). The
// challenge is stateless like every other answer of the edge: the nonce carries its
// time and a MAC over that time and the source address, so nothing is stored per
// challenge and a nonce is good only from the address it was given to.

// nonceTTL is how long a nonce is accepted; an older one is challenged again with
// stale=true, which a client answers without asking its user (RFC 2617 section 3.2.1).
// Five minutes covers a client that reuses its nonce for a series of requests.
const nonceTTL = 5 * time.Minute

// Credential is one direct peer's digest credentials: a user name and its password, or
// HA1 (hex MD5 of "user:realm:password" for the edge's realm) instead of the password.
type Credential struct {
	User, Password, HA1 string
}

// ParseCredentials reads "user:password" entries, one per element.
func ParseCredentials(entries []string) ([]Credential, error) {
	var out []Credential
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		u, p, ok := strings.Cut(e, ":")
		if !ok || u == "" || p == "" {
			return nil, fmt.Errorf("%w: peer credential %q is not user:password", ErrConfig, u)
		}
		out = append(out, Credential{User: u, Password: p})
	}
	return out, nil
}

// peerAuth checks direct peers' digest answers.
type peerAuth struct {
	realm string
	ha1   map[string]string // user → HA1
	key   [32]byte          // MAC key of nonces; random per process
}

func newPeerAuth(realm string, creds []Credential) (*peerAuth, error) {
	if len(creds) == 0 {
		return nil, nil
	}
	if realm == "" {
		return nil, fmt.Errorf("%w: peer credentials need a realm", ErrConfig)
	}
	p := &peerAuth{realm: realm, ha1: map[string]string{}}
	if _, err := rand.Read(p.key[:]); err != nil {
		return nil, fmt.Errorf("edge: nonce key: %w", err)
	}
	for _, c := range creds {
		h := strings.ToLower(c.HA1)
		if h == "" {
			sum := md5.Sum([]byte(c.User + ":" + realm + ":" + c.Password))
			h = hex.EncodeToString(sum[:])
		}
		p.ha1[c.User] = h
	}
	return p, nil
}

// nonce returns a nonce for src issued at t: hex seconds, a dot, a hex MAC.
func (p *peerAuth) nonce(src netip.Addr, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 16)
	return ts + "." + p.mac(ts, src)
}

func (p *peerAuth) mac(ts string, src netip.Addr) string {
	m := hmac.New(sha256.New, p.key[:])
	m.Write([]byte(ts))
	a := src.Unmap().As16()
	m.Write(a[:])
	return hex.EncodeToString(m.Sum(nil)[:12])
}

// nonceState says whether a nonce is ours for src, and still fresh.
func (p *peerAuth) nonceState(n string, src netip.Addr, now time.Time) (ours, fresh bool) {
	ts, mac, ok := strings.Cut(n, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(p.mac(ts, src))) {
		return false, false
	}
	sec, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return false, false
	}
	age := now.Sub(time.Unix(sec, 0))
	return true, age >= -time.Minute && age <= nonceTTL
}

// challenge returns the WWW-Authenticate header line of a 401 for src.
func (p *peerAuth) challenge(src netip.Addr, now time.Time, stale bool) string {
	h := `WWW-Authenticate: Digest realm="` + p.realm + `", nonce="` + p.nonce(src, now) +
		`", algorithm=MD5, qop="auth"`
	if stale {
		h += ", stale=true"
	}
	return h
}

// authResult is the outcome of checking a request's Authorization.
type authResult uint8

const (
	authMissing authResult = iota // no credentials for our realm: challenge
	authStale                     // our nonce, expired: challenge with stale=true
	authBad                       // wrong user, nonce or answer: refuse
	authOK
)

// verify checks the Authorization value of a request with method from src.
func (p *peerAuth) verify(value, method []byte, src netip.Addr, now time.Time) authResult {
	cred, err := digest.ParseCredentials(string(value))
	if err != nil || cred.Realm != p.realm {
		return authMissing
	}
	ha1, known := p.ha1[cred.Username]
	ours, fresh := p.nonceState(cred.Nonce, src, now)
	// The digest-uri is not compared with the Request-URI: clients write it differently
	// (sipp leaves out the user part), and the answer is computed over what they wrote.
	// A captured answer is good only from the address its nonce was given to, for five
	// minutes.
	switch {
	case !known || !ours:
		return authBad
	case !fresh:
		return authStale
	}
	alg := strings.ToUpper(cred.Algorithm)
	if alg != "" && alg != "MD5" {
		return authBad
	}
	chal := &digest.Challenge{Realm: p.realm, Nonce: cred.Nonce, Algorithm: "MD5"}
	if cred.QOP != "" {
		if cred.QOP != "auth" {
			return authBad
		}
		chal.QOP = []string{"auth"}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(method), URI: cred.URI,
		Username: cred.Username, A1: ha1, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil || subtle.ConstantTimeCompare([]byte(want.Response), []byte(strings.ToLower(cred.Response))) != 1 {
		return authBad
	}
	return authOK
}
