package users

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/store"
)

// Demo sign-in. With demo sessions on (DSM_DEMO_SESSIONS) anyone may get a page session
// bound to any user, and the demo page's sign-in is such a session. For that page to be
// reachable from phones too, the user must be registered at the CSCF, which otherwise only
// the site's web server asks for (the registration HTTP API, with the users secret the
// page never holds). In demo mode the page asks through the DSM instead: it writes the
// field sign_in of its own users/<user> object (the bridge lets only that user's token
// write it) when it signs in and again every SessionTTL/2, and deletes it when it signs
// out. Each such write reaches every instance on the change feed, with the client key the
// bridge authenticated; the instance that claims the write's revision first does what a
// POST or a DELETE of the registration API would have done, with the demo identity
// (sip:<user>@DemoDomain, digest user <user> and DemoPassword). A page that goes away
// stops refreshing, and its registration ends SessionTTL later like a web session that is
// not refreshed. Outside demo mode nothing reads sign_in.

// demoQueue bounds the sign-in writes waiting for the demo loop. The feed reader must not
// block; a write dropped when it is full is repeated by the page's next refresh.
const demoQueue = 256

// demoClaimTTL is how long the last handled revision of a user's sign-in is remembered:
// longer than any gap between a page's write and the slowest instance's reading of it,
// and than a session (a write older than the last one handled is never applied).
const demoClaimTTL = 10 * time.Minute

// demoClaimScript lets one instance handle each sign-in write, in revision order: it
// records ARGV[1] as the last revision handled unless one at least as new was.
var demoClaimScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) <= cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// demoSaveScript writes a demo registration record (KEYS[1]) unless it holds a live
// registration that the registration API made (ARGV[1] now, unix ms): the site's own
// registration of a user wins over the demo's. ARGV[2] is the session deadline, ARGV[3]
// when the record expires, then field/value pairs.
var demoSaveScript = redis.NewScript(`
local d = tonumber(redis.call('HGET', KEYS[1], 'deadline') or '0')
if d > tonumber(ARGV[1]) and redis.call('HGET', KEYS[1], 'demo') ~= '1' then return 0 end
local f = {'demo', '1'}
for i = 4, #ARGV do f[#f + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(f))
redis.call('HDEL', KEYS[1], 'password')
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1`)

// demoClaim names the last revision of users/<user> whose sign-in was handled.
func (k userKeys) demoClaim(user string) string { return k.prefix + "demo:{" + user + "}" }

// signIn is one write of a page's sign_in field.
type signIn struct {
	user, client string
	rev          int64
	on           bool // set: signed in (or a refresh); deleted: signed out
}

// demoWrite returns the sign-in write that c carries, if any.
func (u *Users) demoWrite(c store.Change) (signIn, bool) {
	if u.cfg.DemoDomain == "" || c.Kind != store.ChangeOp || c.Client == "" {
		return signIn{}, false
	}
	user, ok := u.userOf(c.Obj)
	if !ok {
		return signIn{}, false
	}
	f := u.schema.Users.Fields.SignIn
	for i := len(c.Ops) - 1; i >= 0; i-- { // the last write of the field wins
		op := c.Ops[i]
		if op.Field != f || (op.Kind != store.OpSet && op.Kind != store.OpDel) {
			continue
		}
		return signIn{user: user, client: c.Client, rev: c.Rev, on: op.Kind == store.OpSet && op.Value != nil && *op.Value != ""}, true
	}
	return signIn{}, false
}

// queueDemo hands a sign-in write to the demo loop without blocking the feed reader.
func (u *Users) queueDemo(s signIn) {
	select {
	case u.demo <- s:
	default:
		u.log.Warn("users: demo sign-in queue full; the page's next refresh repeats it", "user", s.user)
	}
}

// demoLoop handles the sign-in writes of demo pages until ctx ends.
func (u *Users) demoLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-u.demo:
			if err := u.handleSignIn(ctx, s); err != nil && ctx.Err() == nil {
				u.log.Warn("users: demo sign-in", "user", s.user, "err", err)
			}
		}
	}
}

// handleSignIn registers (or refreshes, or logs out) a demo page's user, unless another
// instance handled this write or a newer one already.
func (u *Users) handleSignIn(ctx context.Context, s signIn) error {
	ok, err := demoClaimScript.Run(ctx, u.st.Redis(), []string{u.keys.demoClaim(s.user)},
		strconv.FormatInt(s.rev, 10), demoClaimTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("claim sign-in rev %d: %w", s.rev, err)
	}
	if ok == 0 {
		return nil
	}
	if !s.on {
		return u.demoSignOut(ctx, s)
	}
	if !demoUserName(s.user) {
		return fmt.Errorf("%w: demo user %.64q is not a plain SIP user part", ErrBadRegistration, s.user)
	}
	auth, password := "", ""
	if u.cfg.DemoPassword != "" {
		auth, password = s.user, u.cfg.DemoPassword
	}
	now := time.Now()
	deadline := now.Add(u.cfg.SessionTTL)
	ok, err = demoSaveScript.Run(ctx, u.st.Redis(), []string{u.keys.record(s.user)},
		now.UnixMilli(), deadline.UnixMilli(), deadline.Add(recordGrace).UnixMilli(),
		recSIPURI, "sip:"+s.user+"@"+u.cfg.DemoDomain, recAuthUser, auth, recSealed, u.seal.seal(s.user, password),
		recClient, s.client, recDisplay, s.user, recDeadline, strconv.FormatInt(deadline.UnixMilli(), 10)).Int()
	if err != nil {
		return fmt.Errorf("save demo registration: %w", err)
	}
	if ok == 0 {
		u.log.Debug("users: the site registered this user; the demo sign-in leaves it", "user", s.user)
		return nil
	}
	ms := deadline.UnixMilli()
	_, err = u.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, u.keys.index(), redis.Z{Score: float64(ms), Member: s.user})
		p.Set(ctx, u.keys.client(s.client), s.user, 0)
		p.PExpireAt(ctx, u.keys.client(s.client), deadline.Add(recordGrace))
		return nil
	})
	if err != nil {
		return fmt.Errorf("index demo registration: %w", err)
	}
	u.addToIndex(ctx, s.user, s.user)
	u.log.Debug("users: demo page signed in", "user", s.user)
	return u.announce(ctx, s.user)
}

// demoSignOut ends the demo registration of a page that signed out. Signing out of one
// browser leaves the user registered for another that signed in since (the record names
// the last page to sign in), and a registration the site made is not the demo's to end.
func (u *Users) demoSignOut(ctx context.Context, s signIn) error {
	rec, err := u.loadRecord(ctx, s.user)
	if err != nil || rec == nil || !rec.Demo || rec.Client != s.client {
		return err
	}
	u.log.Info("users: demo page signed out", "user", s.user)
	return u.endSession(ctx, s.user)
}

// demoUserName reports whether user can be the user part of sip:<user>@<domain> as it is:
// session user names may also hold ':' and '@', which would change the URI's meaning.
func demoUserName(user string) bool {
	if user == "" || len(user) > 64 {
		return false
	}
	for i := 0; i < len(user); i++ {
		c := user[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '+') {
			return false
		}
	}
	return true
}
