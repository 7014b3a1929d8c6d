package sipport

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// challenged builds a request to sip:room@ims.test and its 401 or 407 with challenge.
func challenged(status int, challenge string) (*sip.Request, *sip.Response) {
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "room", Host: "ims.test"})
	res := sip.NewResponseFromRequest(req, status, "Challenge", nil)
	hdr := "WWW-Authenticate"
	if status == sip.StatusProxyAuthRequired {
		hdr = "Proxy-Authenticate"
	}
	if challenge != "" {
		res.AppendHeader(sip.NewHeader(hdr, challenge))
	}
	return req, res
}

// TestAnswerChallenge checks the answer against RFC 2617's formula computed here, for a
// password and for the equivalent HA1, on 401 and 407.
func TestAnswerChallenge(t *testing.T) {
	const user, realm, pass, nonce = "web1", "ims.test", "secret", "abc123"
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	want := md5hex(ha1 + ":" + nonce + ":" + md5hex("INVITE:sip:room@ims.test"))
	chal := `Digest realm="` + realm + `", nonce="` + nonce + `", algorithm=md5`
	for name, tc := range map[string]struct {
		status int
		header string
		cred   Digest
	}{
		"401 password": {sip.StatusUnauthorized, "Authorization", Digest{Username: user, Password: pass}},
		"407 password": {sip.StatusProxyAuthRequired, "Proxy-Authorization", Digest{Username: user, Password: pass}},
		"407 HA1":      {sip.StatusProxyAuthRequired, "Proxy-Authorization", Digest{Username: user, HA1: ha1}},
	} {
		t.Run(name, func(t *testing.T) {
			req, res := challenged(tc.status, chal)
			if err := AnswerChallenge(req, res, tc.cred); err != nil {
				t.Fatal(err)
			}
			h := req.GetHeader(tc.header)
			if h == nil {
				t.Fatalf("no %s in %s", tc.header, req)
			}
			v := h.Value()
			for _, part := range []string{`username="web1"`, `realm="ims.test"`, `uri="sip:room@ims.test"`, `response="` + want + `"`} {
				if !strings.Contains(v, part) {
					t.Fatalf("%s %q lacks %s", tc.header, v, part)
				}
			}
		})
	}
}

func TestAnswerChallengeRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		status    int
		challenge string
	}{
		"not a challenge": {sip.StatusForbidden, `Digest realm="x", nonce="y"`},
		"no header":       {sip.StatusProxyAuthRequired, ""},
		"basic":           {sip.StatusUnauthorized, `Basic realm="x"`},
		"unknown algo":    {sip.StatusUnauthorized, `Digest realm="x", nonce="y", algorithm=ROT13`},
		"garbage":         {sip.StatusUnauthorized, `Digest ,,,"`},
		"unsupported qop": {sip.StatusUnauthorized, `Digest realm="x", nonce="y", qop="auth-conf"`},
	} {
		t.Run(name, func(t *testing.T) {
			req, res := challenged(tc.status, tc.challenge)
			if err := AnswerChallenge(req, res, Digest{Username: "u", Password: "p"}); !errors.Is(err, ErrBadChallenge) {
				t.Fatalf("err %v, want ErrBadChallenge", err)
			}
		})
	}
}

// FuzzAnswerChallenge: no challenge a server sends panics the answer, every refusal wraps
// ErrBadChallenge, and an answer is one header without a line break.
func FuzzAnswerChallenge(f *testing.F) {
	for _, s := range []string{`Digest realm="a", nonce="b"`, `Digest realm="a", nonce="b", qop="auth", algorithm=SHA-256`,
		`Digest realm="a\"b", nonce=""`, `Basic x`, `Digest`, "Digest realm=\"a\r\nX: y\", nonce=\"b\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, challenge string) {
		req, res := challenged(sip.StatusProxyAuthRequired, challenge)
		err := AnswerChallenge(req, res, Digest{Username: "u", Password: "p"})
		if err != nil {
			if !errors.Is(err, ErrBadChallenge) {
				t.Fatalf("%q: %v does not wrap ErrBadChallenge", challenge, err)
			}
			return
		}
		if v := req.GetHeader("Proxy-Authorization").Value(); strings.ContainsAny(v, "\r\n") {
			t.Fatalf("%q: answer with a line break: %q", challenge, v)
		}
	})
}
