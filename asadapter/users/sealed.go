package users

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// SIP passwords at rest. The digest of RFC 2617/7616 needs the password (or HA1, which is
// as good as the password for its realm), so a registration record must hold something
// that answers challenges; it holds the password sealed with AES-256-GCM under a key
// derived from the configuration's Secret (HKDF-SHA256). Redis alone (a dump, a replica, a
// MONITOR, an operator's redis-cli) then shows no password; the gateway's configuration is
// needed too. The user name is the additional data, so a sealed password moved into
// another user's record does not open. Changing Secret makes stored passwords unreadable:
// those users fail to register until the web server posts them again (it re-posts every
// session refresh anyway).

// sealInfo labels the key derivation (and versions the format).
const sealInfo = "dsmgw users: SIP password at rest, v1"

// sealer seals and opens the passwords of registration records.
type sealer struct{ aead cipher.AEAD }

func newSealer(secret string) (*sealer, error) {
	key, err := hkdf.Key(sha256.New, []byte(secret), nil, sealInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("%w: derive the record key: %v", ErrConfig, err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns base64(nonce | ciphertext) of password for user ("" for no password).
func (s *sealer) seal(user, password string) string {
	if password == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(password)+s.aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand does not fail on supported platforms
	return base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, []byte(password), []byte(user)))
}

// open reverses seal; it fails on a value sealed under another secret or for another user.
func (s *sealer) open(user, sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	b, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("%w: sealed password of %s is malformed", ErrSealed, user)
	}
	p, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(user))
	if err != nil {
		return "", fmt.Errorf("%w: sealed password of %s does not open (USERS_SECRET changed?)", ErrSealed, user)
	}
	return string(p), nil
}
