package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// objectsPrefix names a client key's object set: the objects under players/<key>/ its
// pages have written, which Claim caps. The Janitor deletes the set with the key's
// presence once the key is gone for good.
const objectsPrefix = "dsm:o:"

// claimScript adds an object to a key's set unless the set is full.
// KEYS: 1 the set.  ARGV: 1 the object, 2 the cap.  Returns 1 (claimed or already there) or 0.
var claimScript = redis.NewScript(`
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`)

// Claim counts obj among the objects of client key key, refusing with ErrTooManyObjects
// when the key already has max others. The bridge calls it before a page's first write
// of an object of its own (players/<key>/...), so that one page cannot make objects
// without bound: each is kept until the key is gone for good. The set goes with the key's
// presence (Janitor).
func (s *Store) Claim(ctx context.Context, key, obj string, max int) error {
	ok, err := claimScript.Run(ctx, s.rdb, []string{objectsPrefix + key}, obj, max).Int()
	if err != nil {
		return fmt.Errorf("store: claim %s for %s: %w", obj, key, err)
	}
	if ok == 0 {
		return fmt.Errorf("store: %s: %w (%d)", obj, ErrTooManyObjects, max)
	}
	return nil
}
