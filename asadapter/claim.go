package asadapter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisKeys names the adapter's own Redis keys (outside the DSM: nobody but gateway
// instances reads them). Each operation touches one key, so they work on Redis Cluster.
type redisKeys struct{ prefix string }

// claim is the key whose value is the instance that owns a player's call.
func (k redisKeys) claim(player string) string { return k.prefix + "claim:" + player }

// dialog is the hash holding a call's dialog state.
func (k redisKeys) dialog(player string) string { return k.prefix + "dialog:" + player }

// calls is the set of players that have a dialog record (scanned for dead owners).
func (k redisKeys) calls() string { return k.prefix + "calls" }

// renewScript extends a claim only if we still hold it.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// releaseScript deletes a claim only if we hold it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// claim takes the lease on a player for this instance. It fails (false, nil) when another
// live instance holds it; a claim whose holder died has expired and is taken.
func (a *Adapter) claim(ctx context.Context, player string) (bool, error) {
	ok, err := a.st.Redis().SetNX(ctx, a.keys.claim(player), a.cfg.Instance, a.cfg.ClaimTTL).Result()
	if err != nil {
		return false, fmt.Errorf("asadapter: claim %s: %w", player, err)
	}
	return ok, nil
}

// renew extends our lease on a player; ErrClaimLost if another instance took it.
func (a *Adapter) renew(ctx context.Context, player string) error {
	n, err := renewScript.Run(ctx, a.st.Redis(), []string{a.keys.claim(player)},
		a.cfg.Instance, a.cfg.ClaimTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("asadapter: renew claim %s: %w", player, err)
	}
	if n == 0 {
		return fmt.Errorf("asadapter: renew claim %s: %w", player, ErrClaimLost)
	}
	return nil
}

// release gives up our lease on a player (no-op if another instance holds it).
func (a *Adapter) release(ctx context.Context, player string) {
	if err := releaseScript.Run(ctx, a.st.Redis(), []string{a.keys.claim(player)}, a.cfg.Instance).Err(); err != nil &&
		!errors.Is(err, redis.Nil) {
		a.log.Warn("release claim failed; it expires by itself", "player", player, "err", err)
	}
}

// claimHolder returns the instance holding a player's claim, or "" when none does.
func (a *Adapter) claimHolder(ctx context.Context, player string) (string, error) {
	v, err := a.st.Redis().Get(ctx, a.keys.claim(player)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("asadapter: read claim %s: %w", player, err)
	}
	return v, nil
}

// renewEvery is how often a live call renews its claim: a third of the lease, so two
// renewals can fail (a Redis hiccup) before another instance may take the call over.
func (a *Adapter) renewEvery() time.Duration { return a.cfg.ClaimTTL / 3 }
