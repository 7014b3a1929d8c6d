package store

import (
	"fmt"
	"hash/crc32"
	"strings"
)

// MaxAddressSegments bounds an address's depth: the deepest well-known object,
// users/<user>/conf/<id>, has four segments; eight leaves room without letting a client
// make arbitrarily long keys.
const MaxAddressSegments = 8

// maxSegmentBytes bounds one segment (a client key is 26 bytes, a SIP user part rarely
// more than 64).
const maxSegmentBytes = 128

// ValidAddress checks an object address: 1 to 8 segments separated by '/', each 1 to 128
// characters of [A-Za-z0-9._:@+-], and none of them "." or ".." (which would let a path
// name another object's address once anything resolves it as a path).
func ValidAddress(addr string) error {
	if addr == "" {
		return fmt.Errorf("%w: empty", ErrBadAddress)
	}
	// Segments are walked in place rather than split: this runs for every op a client
	// sends, and a split allocates.
	if n := strings.Count(addr, "/") + 1; n > MaxAddressSegments {
		return fmt.Errorf("%w: %d segments > %d", ErrBadAddress, n, MaxAddressSegments)
	}
	for rest := addr; ; {
		s, more, found := strings.Cut(rest, "/")
		rest = more
		if s == "" || len(s) > maxSegmentBytes {
			return fmt.Errorf("%w: segment of %d bytes in %.64q", ErrBadAddress, len(s), addr)
		}
		if s == "." || s == ".." {
			return fmt.Errorf("%w: segment %q in %.64q", ErrBadAddress, s, addr)
		}
		for i := 0; i < len(s); i++ {
			if !addrByte(s[i]) {
				return fmt.Errorf("%w: byte %q in %.64q", ErrBadAddress, s[i], addr)
			}
		}
		if !found {
			return nil
		}
	}
}

func addrByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("._:@+-", c) >= 0
}

// keys names the Redis keys of one object. All share the hash tag of the object's shard, so
// one Lua script can touch them all on Redis Cluster.
type keys struct {
	shard   int
	fields  string
	meta    string
	log     string
	feed    string
	writers string // the shard's writer index (see Janitor)
}

func shardOf(addr string, shards int) int {
	return int(crc32.ChecksumIEEE([]byte(addr)) % uint32(shards))
}

func feedKey(shard int) string { return fmt.Sprintf("dsm:{%d}:feed", shard) }

// writersKey names the shard's writer index: a sorted set of "<client> <object>" scored by
// the unix ms of the client's last commit to the object (or of any commit to an object the
// client owns).
func writersKey(shard int) string { return fmt.Sprintf("dsm:{%d}:w", shard) }

func keysFor(addr string, shards int) keys {
	n := shardOf(addr, shards)
	p := fmt.Sprintf("dsm:{%d}:", n)
	return keys{
		shard:   n,
		fields:  p + "f:" + addr,
		meta:    p + "m:" + addr,
		log:     p + "l:" + addr,
		feed:    feedKey(n),
		writers: writersKey(n),
	}
}

// addrFromEventKey returns the object address of a fields key ("dsm:{N}:f:<addr>") or a
// meta key ("dsm:{N}:m:<addr>"), and which of the two it is.
func addrFromEventKey(key string) (addr string, meta, ok bool) {
	if !strings.HasPrefix(key, "dsm:{") {
		return "", false, false
	}
	i := strings.Index(key, "}:")
	if i < 0 || len(key) < i+5 || key[i+3] != ':' {
		return "", false, false
	}
	switch key[i+2] {
	case 'f':
		return key[i+4:], false, true
	case 'm':
		return key[i+4:], true, true
	}
	return "", false, false
}
