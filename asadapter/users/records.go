package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"

	"dsmgw/asadapter/sipport"
)

// userKeys names the Redis keys of registrations. They are the adapter's own keys, not DSM
// objects: a registration record holds the SIP password, and browsers may read every DSM
// object under users/. A user's keys share the hash tag {<user>} so the scripts touching
// them work on Redis Cluster.
type userKeys struct{ prefix string }

// record is the hash of one registration: what the web server posted, the session
// deadline and what the holder last registered (so a taker can remove a stale contact).
func (k userKeys) record(user string) string { return k.prefix + "reg:{" + user + "}" }

// lease is the string naming the instance that holds the user ("<instance>/<random>").
func (k userKeys) lease(user string) string { return k.prefix + "lease:{" + user + "}" }

// client names the user a browser's client key is logged in as (the Directory's reverse
// lookup), expiring with the record.
func (k userKeys) client(key string) string { return k.prefix + "client:{" + key + "}" }

// index is the sorted set of registered users, scored by session deadline (unix ms).
func (k userKeys) index() string { return k.prefix + "regs" }

// wakeChannel is the pub/sub channel on which a user name is published when its record
// changes. A plain PUBLISH reaches subscribers on every node of a cluster.
func (k userKeys) wakeChannel() string { return k.prefix + "users:wake" }

// Fields of a registration record.
const (
	recSIPURI   = "sip_uri"
	recAuthUser = "auth_user"
	recSealed   = "password_sealed" // the SIP password, sealed (sealed.go)
	recClient   = "client"
	recDisplay  = "display"
	recDeadline = "deadline" // unix ms: the session ends then (logout = now)
	recContact  = "contact"  // the contact the holder registered last
	recCallID   = "call_id"  // its REGISTER Call-ID
	recDemo     = "demo"     // "1": made by a demo page's sign-in (demo.go), not by the API
)

// legacyPasswordField is the record field in which versions before sealing kept the SIP
// password in plain text; saveRecord deletes it, loadRecord still reads it.
const legacyPasswordField = "password"

// legacyClientField is the field of users/<user> in which versions before the Directory
// published the browser's client key; flush deletes it.
const legacyClientField = "client"

// regRecord is one registration as posted by the web server.
type regRecord struct {
	SIPURI, AuthUser, Password, Client, Display string
	Deadline                                    time.Time
	Contact, CallID                             string
	// Demo is set on a record a demo page's sign-in made (demo.go).
	Demo bool
}

// sameCredentials reports whether a re-post changes nothing the registrar sees.
func (r *regRecord) sameCredentials(o *regRecord) bool {
	return r.SIPURI == o.SIPURI && r.AuthUser == o.AuthUser && r.Password == o.Password
}

// recordGrace keeps a record in Redis this long after its deadline, so an instance that
// takes a user over after the holder died can still send the un-REGISTER.
const recordGrace = 5 * time.Minute

var userReleaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

var userRenewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// finishScript deletes a record whose session has ended, unless it was posted again
// meanwhile (its deadline moved past now).
var finishScript = redis.NewScript(`
local d = tonumber(redis.call('HGET', KEYS[1], 'deadline') or '0')
if d <= tonumber(ARGV[1]) then redis.call('DEL', KEYS[1]) return 1 end
return 0`)

// unindexScript removes a user from the index unless a later post moved its deadline.
var unindexScript = redis.NewScript(`
local s = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]) or '0')
if s <= tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0`)

// saveRecord stores a posted registration, indexes it and announces it.
func (u *Users) saveRecord(ctx context.Context, user string, r *regRecord) error {
	rdb := u.st.Redis()
	ms := r.Deadline.UnixMilli()
	key := u.keys.record(user)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, recSIPURI, r.SIPURI, recAuthUser, r.AuthUser, recSealed, u.seal.seal(user, r.Password),
			recClient, r.Client, recDisplay, r.Display, recDeadline, strconv.FormatInt(ms, 10))
		p.HDel(ctx, key, legacyPasswordField, recDemo) // the site's registration from now on
		p.PExpireAt(ctx, key, r.Deadline.Add(recordGrace))
		p.ZAdd(ctx, u.keys.index(), redis.Z{Score: float64(ms), Member: user})
		p.Set(ctx, u.keys.client(r.Client), user, 0)
		p.PExpireAt(ctx, u.keys.client(r.Client), r.Deadline.Add(recordGrace))
		return nil
	})
	if err != nil {
		return fmt.Errorf("users: save registration of %s: %w", user, err)
	}
	return u.announce(ctx, user)
}

// endSession moves a record's deadline to now (logout). It returns ErrNoRegistration when
// there is no record.
func (u *Users) endSession(ctx context.Context, user string) error {
	rdb := u.st.Redis()
	now := time.Now()
	n, err := rdb.Exists(ctx, u.keys.record(user)).Result()
	if err != nil {
		return fmt.Errorf("users: logout %s: %w", user, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNoRegistration, user)
	}
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, u.keys.record(user), recDeadline, strconv.FormatInt(now.UnixMilli(), 10))
		p.PExpireAt(ctx, u.keys.record(user), now.Add(recordGrace))
		p.ZAdd(ctx, u.keys.index(), redis.Z{Score: float64(now.UnixMilli()), Member: user})
		return nil
	})
	if err != nil {
		return fmt.Errorf("users: logout %s: %w", user, err)
	}
	return u.announce(ctx, user)
}

func (u *Users) announce(ctx context.Context, user string) error {
	if err := u.st.Redis().Publish(ctx, u.keys.wakeChannel(), user).Err(); err != nil {
		// The scan finds the user anyway; only the reaction is slower.
		u.log.Warn("users: announce registration change", "user", user, "err", err)
	}
	return nil
}

// loadRecord reads a registration record; nil when there is none.
func (u *Users) loadRecord(ctx context.Context, user string) (*regRecord, error) {
	m, err := u.st.Redis().HGetAll(ctx, u.keys.record(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("users: read registration of %s: %w", user, err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	ms, _ := strconv.ParseInt(m[recDeadline], 10, 64)
	password := m[legacyPasswordField]
	if s, ok := m[recSealed]; ok {
		p, err := u.seal.open(user, s)
		if err != nil {
			// The registrar will refuse us; the state says so, and the next post mends it.
			u.log.Warn("users: stored password unreadable; registering without it", "user", user, "err", err)
		}
		password = p
	}
	return &regRecord{
		SIPURI: m[recSIPURI], AuthUser: m[recAuthUser], Password: password,
		Client: m[recClient], Display: m[recDisplay], Deadline: time.UnixMilli(ms),
		Contact: m[recContact], CallID: m[recCallID], Demo: m[recDemo] == "1",
	}, nil
}

// noteBinding records the contact and Call-ID the holder registered.
func (u *Users) noteBinding(ctx context.Context, user, contact, callID string) {
	if err := u.st.Redis().HSet(ctx, u.keys.record(user), recContact, contact, recCallID, callID).Err(); err != nil {
		u.log.Warn("users: note binding", "user", user, "err", err)
	}
}

// finishRecord removes an ended session's record and index entry (unless re-posted).
func (u *Users) finishRecord(ctx context.Context, user string) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	if client, err := u.st.Redis().HGet(ctx, u.keys.record(user), recClient).Result(); err == nil && client != "" {
		// The reverse lookup checks the record anyway; deleting it only frees it early.
		u.st.Redis().Del(ctx, u.keys.client(client))
	}
	if err := finishScript.Run(ctx, u.st.Redis(), []string{u.keys.record(user)}, now).Err(); err != nil {
		u.log.Warn("users: delete ended registration", "user", user, "err", err)
	}
	if err := unindexScript.Run(ctx, u.st.Redis(), []string{u.keys.index()}, user, now).Err(); err != nil {
		u.log.Warn("users: unindex ended registration", "user", user, "err", err)
	}
}

// renewLease extends our lease; ErrLeaseLost when another instance holds it now.
func (u *Users) renewLease(ctx context.Context, user, token string) error {
	n, err := userRenewScript.Run(ctx, u.st.Redis(), []string{u.keys.lease(user)}, token, u.cfg.LeaseTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("users: renew lease of %s: %w", user, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrLeaseLost, user)
	}
	return nil
}

// isRedisDown tells a lost lease from a Redis error (on which we keep going).
func isRedisDown(err error) bool { return err != nil && !errors.Is(err, ErrLeaseLost) }

func newToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// What call control asks of a registered user (sipport.Users): the binding its calls use
// as their Contact, and answers to digest challenges with its credentials. Both read the
// registration record in Redis, so any instance can place a user's call, whichever holds
// the registration; the credentials never leave this package.

var _ sipport.Users = (*Users)(nil)

// Binding returns the contact registered for user and the instance holding the
// registration; ok is false when the user has no live registration (none posted, the
// session ended, not registered yet, or no instance holds it).
func (u *Users) Binding(ctx context.Context, user string) (sipport.Binding, bool, error) {
	var hm *redis.SliceCmd
	var lv *redis.StringCmd
	_, err := u.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		hm = p.HMGet(ctx, u.keys.record(user), recContact, recDeadline)
		lv = p.Get(ctx, u.keys.lease(user))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return sipport.Binding{}, false, fmt.Errorf("users: binding of %s: %w", user, err)
	}
	vals, _ := hm.Result()
	holder, _ := lv.Result()
	if len(vals) != 2 || holder == "" {
		return sipport.Binding{}, false, nil
	}
	contact, _ := vals[0].(string)
	deadline, _ := vals[1].(string)
	ms, err := strconv.ParseInt(deadline, 10, 64)
	if err != nil || !time.UnixMilli(ms).After(time.Now()) || contact == "" {
		return sipport.Binding{}, false, nil
	}
	var c sip.Uri
	if err := sip.ParseUri(contact, &c); err != nil {
		return sipport.Binding{}, false, fmt.Errorf("users: binding of %s: contact %q: %w", user, contact, err)
	}
	// The lease is "<instance>/<random>"; instance names may hold a slash themselves.
	inst := holder
	if i := strings.LastIndexByte(holder, '/'); i >= 0 {
		inst = holder[:i]
	}
	return sipport.Binding{Contact: c, Instance: inst}, true, nil
}

// Authorize answers the challenge of res to req with user's credentials, as the user's
// REGISTER and SUBSCRIBE do. The error wraps sipport.ErrNoCredentials when the user has no
// live registration or registered without credentials.
func (u *Users) Authorize(ctx context.Context, user string, req *sip.Request, res *sip.Response) error {
	rec, err := u.loadRecord(ctx, user)
	if err != nil {
		return err
	}
	if rec == nil || !rec.Deadline.After(time.Now()) || rec.AuthUser == "" {
		return fmt.Errorf("users: answer a challenge for %s: %w", user, sipport.ErrNoCredentials)
	}
	if err := sipport.AnswerChallenge(req, res, credentials{rec.AuthUser, rec.Password}.digest()); err != nil {
		return fmt.Errorf("users: answer a challenge for %s: %w", user, err)
	}
	return nil
}
