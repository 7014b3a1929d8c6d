package asadapter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/sdp"
)

// The adapter's own records in Redis, outside the DSM (nobody but gateway instances reads
// them): a claim names the instance that owns a player's call, and a dialog record holds
// what another instance needs to end the call when that owner dies (takeover.go).

// redisKeys names the adapter's own Redis keys (outside the DSM: nobody but gateway
// instances reads them). Each operation touches one key, so they work on Redis Cluster.
type redisKeys struct{ prefix string }

// claim is the key whose value is the instance that owns a player's call.
func (k redisKeys) claim(player string) string { return k.prefix + "claim:" + player }

// dialog is the string holding a call's dialog record (JSON).
func (k redisKeys) dialog(player string) string { return k.prefix + "dialog:" + player }

// calls is the set of players that have a dialog record (scanned for dead owners).
func (k redisKeys) calls() string { return k.prefix + "calls" }

// claimGen is the key of a player's claim generation counter. Its hash tag is the whole
// claim key, so both hash to the claim key's slot and one script takes both on Redis
// Cluster.
func (k redisKeys) claimGen(player string) string { return "{" + k.claim(player) + "}:gen" }

// claimGenTTL is how long a player's generation counter outlives its last claim when no
// release deletes it (releaseScript): far beyond any call, so a takeover always draws a
// generation above the lost owner's.
const claimGenTTL = 30 * 24 * time.Hour

// claimScript takes a free claim: the next generation of the player's counter, and the
// claim "<instance>/<generation>" with the lease; 0 when someone holds it. A counter
// that does not exist (the player's first call, or its last call released it) starts at
// Redis's clock in microseconds, so a player's generations grow across its calls too and
// no generation is drawn twice (a lapsed claim is restored only while the counter shows
// its generation, lease_renew.go).
var claimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
end
local gen = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. '/' .. string.format('%d', gen), 'PX', ARGV[2])
return gen`)

// renewScript extends a claim only if we still hold it, in the same generation.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`)

// releaseScript deletes a claim only if we hold it, in the same generation, and the
// player's generation counter with it: nothing of a call is left in Redis once it ended
// (the next call of the player counts from 1 again; a late commit of an owner of an
// earlier call is refused by the call_id its commits expect, and by the claim_gen the
// next call writes over its own).
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  return redis.call('DEL', KEYS[1])
end
return 0`)

// yieldScript deletes a claim only if we hold it, in the same generation, and leaves the
// generation counter: the call goes on (another instance takes it next, in a higher
// generation), so its generations must keep growing.
var yieldScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// claimed is a claim this instance holds on a player: its generation (also the value of
// the player's claim_gen field while the call is ours, which every commit about the call
// expects) and when the request that took it was sent (the lease counts from then,
// lease.go).
type claimed struct {
	player string
	gen    int64
	at     time.Time
	value  string // "<instance>/<gen>", the claim key's value
}

// genString is the generation as the player's claim_gen field holds it.
func (c claimed) genString() string { return strconv.FormatInt(c.gen, 10) }

// claim takes the lease on a player for this instance, in a new generation. It fails
// (ok false, nil error) when another live instance holds it; a claim whose holder died
// has expired and is taken.
func (a *Adapter) claim(ctx context.Context, player string) (claimed, bool, error) {
	at := time.Now()
	gen, err := claimScript.Run(ctx, a.st.Redis(), []string{a.keys.claim(player), a.keys.claimGen(player)},
		a.cfg.Instance, a.cfg.ClaimTTL.Milliseconds(), claimGenTTL.Milliseconds()).Int64()
	if err != nil {
		return claimed{}, false, fmt.Errorf("asadapter: claim %s: %w", player, err)
	}
	if gen == 0 {
		return claimed{}, false, nil
	}
	return claimed{player: player, gen: gen, at: at, value: a.cfg.Instance + "/" + strconv.FormatInt(gen, 10)}, true, nil
}

// renew extends our lease on a player; ErrClaimLost if another instance (or another
// generation of ours) holds it, or nobody does.
func (a *Adapter) renew(ctx context.Context, cl claimed) error {
	n, err := renewScript.Run(ctx, a.st.Redis(), []string{a.keys.claim(cl.player)},
		cl.value, a.cfg.ClaimTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("asadapter: renew claim %s: %w", cl.player, err)
	}
	if n == 0 {
		return fmt.Errorf("asadapter: renew claim %s: %w", cl.player, ErrClaimLost)
	}
	return nil
}

// release gives up our lease on a player (no-op if another instance holds it).
func (a *Adapter) release(ctx context.Context, cl claimed) {
	if err := releaseScript.Run(ctx, a.st.Redis(), []string{a.keys.claim(cl.player), a.keys.claimGen(cl.player)}, cl.value).Err(); err != nil &&
		!errors.Is(err, redis.Nil) {
		a.log.Warn("release claim failed; it expires by itself", "player", cl.player, "err", err)
	}
}

// yield gives up a claim taken for a takeover that this instance does not carry out (the
// call stays live for another instance to take): unlike release it keeps the player's
// generation counter, so the next owner's generation is above every earlier one and the
// player's claim_gen only grows while the call lives (takeover.go relies on it).
func (a *Adapter) yield(ctx context.Context, cl claimed) {
	if err := yieldScript.Run(ctx, a.st.Redis(), []string{a.keys.claim(cl.player)}, cl.value).Err(); err != nil &&
		!errors.Is(err, redis.Nil) {
		a.log.Warn("give up claim failed; it expires by itself", "player", cl.player, "err", err)
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
	return ClaimInstance(v), nil
}

// ClaimInstance returns the instance named by a claim key's value ("<instance>/<gen>"),
// for tools and tests that read claims.
func ClaimInstance(value string) string {
	if i := strings.LastIndexByte(value, '/'); i >= 0 {
		return value[:i]
	}
	return value
}

// dialog is a call's SIP dialog state (RFC 3261 section 12) plus what another instance
// needs to end the call: it is stored in Redis as JSON on every change.
type dialog struct {
	Player     string      `json:"player"`
	Owner      string      `json:"owner"`
	Dir        Direction   `json:"dir"`
	State      DialogState `json:"state"`
	CallID     string      `json:"call_id"`
	LocalTag   string      `json:"ltag"`
	RemoteTag  string      `json:"rtag,omitempty"`
	LocalURI   string      `json:"luri"`  // From (ours) without tag
	RemoteURI  string      `json:"ruri"`  // To (theirs) without tag
	LocalCSeq  uint32      `json:"lcseq"` // last CSeq we used
	RemoteCSeq uint32      `json:"rcseq"` // last CSeq the peer used
	RouteSet   []string    `json:"routes,omitempty"`
	Target     string      `json:"target"` // remote target (Contact) or request URI before a dialog
	Term       string      `json:"term,omitempty"`
	// User is the registered user whose call this is (caller.go): our Contact carries its
	// name and its credentials answer challenges; "" for the adapter's own identity.
	User string `json:"user,omitempty"`
	// Contact is our Contact when it is the user's registered one ("": derived, see
	// dialogContact).
	Contact string `json:"contact,omitempty"`
	// Service is the call's IMS service ("mmtel", "poc"): our Contact in the dialog
	// carries its feature tags (asadapter/icsi).
	Service string `json:"service,omitempty"`
	// InviteVia and InviteCSeq let another instance CANCEL our INVITE before an answer.
	InviteVia  string `json:"invite_via,omitempty"`
	InviteCSeq uint32 `json:"invite_cseq,omitempty"`
	InviteURI  string `json:"invite_uri,omitempty"`
	// InviteVias, InviteFrom and InviteSource let another instance give the final answer
	// to an incoming INVITE still ringing here (takeover.go): its Via headers in order,
	// and the address and transport it came from.
	InviteVias      []string `json:"invite_vias,omitempty"`
	InviteSource    string   `json:"invite_src,omitempty"`
	InviteTransport string   `json:"invite_tp,omitempty"`
	// Origin is our SDP origin: its session id, address and the version of the last
	// description we sent (a takeover's re-offer sends the next).
	Origin sdp.Origin `json:"origin"`
	// Media is the media the session negotiated: the far end's address, the payload types
	// agreed and the direction; a takeover re-offers these codecs and keeps the hold.
	Media *sdp.Remote `json:"media,omitempty"`
	// ReinviteCSeq is the CSeq of our re-INVITE in progress (0: none): an instance that
	// takes the call over ACKs its 2xx, which went to the lost instance.
	ReinviteCSeq uint32 `json:"reinvite,omitempty"`
	// Session timer (RFC 4028): interval in seconds and who refreshes ("uac"/"uas").
	SessionExpires int    `json:"se,omitempty"`
	Refresher      string `json:"refresher,omitempty"`

	listed bool // already in the calls set (not stored)
}

// saveDialog stores d (on every change of it, under the lock that guards it or on a copy).
func (a *Adapter) saveDialog(ctx context.Context, d *dialog) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("asadapter: encode dialog of %s: %w", d.Player, err)
	}
	// The first save also lists the player in the set a takeover scans; later saves
	// (CSeq, state) rewrite only the record, one command.
	if d.listed {
		err = a.st.Redis().Set(ctx, a.keys.dialog(d.Player), b, 0).Err()
	} else {
		_, err = a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, a.keys.dialog(d.Player), b, 0)
			p.SAdd(ctx, a.keys.calls(), d.Player)
			return nil
		})
	}
	if err != nil {
		return fmt.Errorf("asadapter: save dialog of %s: %w", d.Player, err)
	}
	d.listed = true
	return nil
}

// loadDialog reads the dialog record of player; ErrNoDialog when there is none.
func (a *Adapter) loadDialog(ctx context.Context, player string) (*dialog, error) {
	b, err := a.st.Redis().Get(ctx, a.keys.dialog(player)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("asadapter: dialog of %s: %w", player, ErrNoDialog)
	}
	if err != nil {
		return nil, fmt.Errorf("asadapter: load dialog of %s: %w", player, err)
	}
	var d dialog
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("asadapter: decode dialog of %s: %w", player, err)
	}
	d.listed = true
	return &d, nil
}

// deleteDialog drops the dialog record of player and its entry in the calls set.
func (a *Adapter) deleteDialog(ctx context.Context, player string) {
	_, err := a.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, a.keys.dialog(player))
		p.SRem(ctx, a.keys.calls(), player)
		return nil
	})
	if err != nil {
		a.log.Warn("delete dialog failed; the rescan retries", "player", player, "err", err)
	}
}
