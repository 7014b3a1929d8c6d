package asadapter

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"dsmgw/store"
)

// SIPPort is what the registration and subscription half needs from the SIP user agent.
// *Adapter implements it; the two halves share one set of listeners, so NOTIFYs reach the
// Contact we advertise in SUBSCRIBE.
type SIPPort interface {
	// SIP returns the user agent and the client to send with.
	SIP() (*sipgo.UserAgent, *sipgo.Client)
	// PrepareRequest adds the outbound proxy route (when the request has none) and our Via.
	PrepareRequest(req *sip.Request)
	// ContactURI is our Contact for a transport ("udp", "tcp", "tls") with a user part.
	ContactURI(user, transport string) sip.Uri
}

// UsersConfig configures Users. Zero values take the defaults filled in by fill.
type UsersConfig struct {
	// Instance names this gateway instance in leases and logs (default: hostname-random;
	// pass the Adapter's Instance()).
	Instance string
	// Secret is the bearer token the web server presents to the HTTP API. Required: the
	// API takes SIP passwords.
	Secret string
	// Registrar is the request URI of REGISTER ("sip:ims.example.net"); "" uses the
	// domain of the user's SIP URI, as RFC 3261 section 10.2 suggests.
	Registrar string
	// ConferenceDomain completes conference ids written without a scheme ("conf1" →
	// sip:conf1@ConferenceDomain); "" uses the domain of the user's SIP URI.
	ConferenceDomain string
	// Expires is the registration lifetime asked for (600 s: IMS registrars grant
	// between 600 and 3600 s; shorter only costs refreshes).
	Expires time.Duration
	// SubscribeExpires is the conference subscription lifetime asked for (600 s).
	SubscribeExpires time.Duration
	// SessionTTL is how long a registration lives when the web server gives no TTL and
	// does not refresh it (120 s: a web server refreshing every minute survives one
	// missed refresh; a browser that went away is logged out within two minutes).
	SessionTTL time.Duration
	// LeaseTTL is the lease on a user's registration: an instance that died loses its
	// users to another after at most this long (15 s, renewed every third).
	LeaseTTL time.Duration
	// Scan is how often the registration index is read to claim users no instance holds
	// (2 s: the takeover delay after a holder dies is LeaseTTL plus at most this).
	Scan time.Duration
	// RetryMin and RetryMax bound the backoff after a failed REGISTER or SUBSCRIBE
	// (2 s doubling to 60 s: quick recovery from a blip without hammering a registrar
	// that refuses us).
	RetryMin, RetryMax time.Duration
	// RequestTimeout bounds one REGISTER or SUBSCRIBE transaction including a digest
	// retry (32 s, the transaction timeout of RFC 3261 with T1 = 500 ms).
	RequestTimeout time.Duration
	// MaxParticipants caps the fields written to one participant list (default: the
	// store's MaxFields, which the commit script enforces).
	MaxParticipants int
	// ConfInfo bounds NOTIFY bodies.
	ConfInfo ConfInfoLimits
	// KeyPrefix prefixes the Redis keys of registrations and leases ("asadapter:").
	KeyPrefix string
}

func (c *UsersConfig) fill(st *store.Store) error {
	if c.Secret == "" {
		return fmt.Errorf("%w: Users needs the HTTP API secret", ErrUsersConfig)
	}
	if c.Instance == "" {
		h, _ := os.Hostname()
		c.Instance = h + "-" + newToken(4)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Expires, 600*time.Second)
	def(&c.SubscribeExpires, 600*time.Second)
	def(&c.SessionTTL, 120*time.Second)
	def(&c.LeaseTTL, 15*time.Second)
	def(&c.Scan, 2*time.Second)
	def(&c.RetryMin, 2*time.Second)
	def(&c.RetryMax, 60*time.Second)
	def(&c.RequestTimeout, 32*time.Second)
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.MaxParticipants <= 0 {
		c.MaxParticipants = st.Config().MaxFields
	}
	c.ConfInfo.fill()
	if c.KeyPrefix == "" {
		c.KeyPrefix = "asadapter:"
	}
	if c.Registrar != "" {
		var u sip.Uri
		if err := sip.ParseUri(c.Registrar, &u); err != nil {
			return fmt.Errorf("%w: Registrar %q: %v", ErrUsersConfig, c.Registrar, err)
		}
	}
	return nil
}

// Users registers web users at the CSCF on their browsers' behalf and subscribes to the
// conferences they may join, mirroring the state into the DSM's users structure
// (users/<user> and users/<user>/conf/<id>). The web server drives it through the HTTP
// API (HTTPHandler); every gateway instance runs one, and each user is held by exactly one
// instance at a time through a lease in Redis.
type Users struct {
	cfg    UsersConfig
	sip    SIPPort
	st     *store.Store
	feed   *store.Feed
	log    *slog.Logger
	schema *store.Schema
	keys   userKeys
	met    *usersMetrics

	mu      sync.Mutex             // guards workers and subs
	workers map[string]*userWorker // user → worker of a user this instance holds
	subs    map[string]*subscription
	wg      sync.WaitGroup // the workers
	runCtx  context.Context
}

// NewUsers builds the registration and subscription half. sipPort is normally the
// *Adapter; its NOTIFY requests must be routed to HandleNotify.
func NewUsers(cfg UsersConfig, sipPort SIPPort, st *store.Store, feed *store.Feed, reg prometheus.Registerer, log *slog.Logger) (*Users, error) {
	if sipPort == nil || st == nil || feed == nil {
		return nil, fmt.Errorf("%w: Users needs a SIP port, a store and a feed", ErrUsersConfig)
	}
	if err := cfg.fill(st); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	met, err := newUsersMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Users{
		cfg:     cfg,
		sip:     sipPort,
		st:      st,
		feed:    feed,
		log:     log.With("component", "asadapter-users", "instance", cfg.Instance),
		schema:  st.Schema(),
		keys:    userKeys{prefix: cfg.KeyPrefix},
		met:     met,
		workers: map[string]*userWorker{},
		subs:    map[string]*subscription{},
	}, nil
}

// Run claims and drives registrations until ctx ends. When ctx ends, the users held here
// are released without unregistering (another instance takes them over and removes our
// stale contact); use the HTTP DELETE to log a user out.
func (u *Users) Run(ctx context.Context) error {
	u.mu.Lock()
	u.runCtx = ctx
	u.mu.Unlock()
	unsub := u.feed.Subscribe(u.onChange)
	defer unsub()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return u.wakeLoop(gctx) })
	g.Go(func() error { return u.scanLoop(gctx) })
	u.log.Info("users: registration and conference subscriptions running")
	err := g.Wait()
	u.wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// onChange wakes the worker of a user whose object changed (its conferences, say). It runs
// on a feed reader and must not block.
func (u *Users) onChange(c store.Change) {
	user, ok := u.userOf(c.Obj)
	if !ok {
		return
	}
	u.mu.Lock()
	w := u.workers[user]
	u.mu.Unlock()
	if w != nil {
		w.poke()
	}
}

// userOf returns the user of "users/<user>" (not of its conference lists, which only we
// write).
func (u *Users) userOf(obj string) (string, bool) {
	if len(obj) <= len(u.schema.Users.Prefix) || obj[:len(u.schema.Users.Prefix)] != u.schema.Users.Prefix {
		return "", false
	}
	user := obj[len(u.schema.Users.Prefix):]
	for i := 0; i < len(user); i++ {
		if user[i] == '/' {
			return "", false
		}
	}
	return user, true
}

// wake makes this instance look at user now: the worker if we hold it, else a claim.
func (u *Users) wake(ctx context.Context, user string) {
	u.mu.Lock()
	w := u.workers[user]
	u.mu.Unlock()
	if w != nil {
		w.poke()
		return
	}
	u.tryClaim(ctx, user)
}

// tryClaim takes the lease of user if no instance holds it and starts its worker.
func (u *Users) tryClaim(ctx context.Context, user string) { u.claimAll(ctx, []string{user}) }

// claimAll tries to take the leases of users not held here, in one pipelined round trip
// (the scan offers every registered user each time), and starts a worker for each lease
// taken.
func (u *Users) claimAll(ctx context.Context, users []string) {
	u.mu.Lock()
	runCtx := u.runCtx
	free := make([]string, 0, len(users))
	for _, user := range users {
		if _, held := u.workers[user]; !held {
			free = append(free, user)
		}
	}
	u.mu.Unlock()
	if runCtx == nil || runCtx.Err() != nil || len(free) == 0 {
		return
	}
	tokens := make([]string, len(free))
	cmds := make([]*redis.BoolCmd, len(free))
	_, err := u.st.Redis().Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, user := range free {
			tokens[i] = u.cfg.Instance + "/" + newToken(8)
			cmds[i] = p.SetNX(ctx, u.keys.lease(user), tokens[i], u.cfg.LeaseTTL)
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		u.log.Warn("users: claim", "users", len(free), "err", err)
	}
	for i, user := range free {
		if ok, err := cmds[i].Result(); err == nil && ok {
			u.startWorker(runCtx, user, tokens[i])
		}
	}
}

// startWorker runs the worker of a user whose lease we just took.
func (u *Users) startWorker(runCtx context.Context, user, token string) {
	w := newUserWorker(u, user, token)
	u.mu.Lock()
	if _, held := u.workers[user]; held || runCtx.Err() != nil {
		u.mu.Unlock()
		u.releaseLease(user, token)
		return
	}
	u.workers[user] = w
	u.wg.Add(1)
	u.mu.Unlock()
	u.met.claims.Inc()
	go func() {
		defer u.wg.Done()
		w.run(runCtx)
		u.mu.Lock()
		delete(u.workers, user)
		u.mu.Unlock()
	}()
}

// scanLoop claims, every Scan, the users of the registration index that no instance
// holds: new registrations whose wake-up was lost, and users of an instance that died.
func (u *Users) scanLoop(ctx context.Context) error {
	t := time.NewTicker(u.cfg.Scan)
	defer t.Stop()
	for {
		users, err := u.st.Redis().ZRange(ctx, u.keys.index(), 0, -1).Result()
		if err != nil && ctx.Err() == nil {
			u.log.Warn("users: read registration index", "err", err)
		}
		u.claimAll(ctx, users)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// wakeLoop listens to the wake-up channel on which every instance announces new,
// changed and ended registrations, so the holder reacts at once.
func (u *Users) wakeLoop(ctx context.Context) error {
	for ctx.Err() == nil {
		ps := u.st.Redis().Subscribe(ctx, u.keys.wakeChannel())
		// ReceiveMessage does not watch ctx; closing the PubSub is what unblocks it.
		stop := context.AfterFunc(ctx, func() { ps.Close() })
		for ctx.Err() == nil {
			msg, err := ps.ReceiveMessage(ctx)
			if err != nil {
				if ctx.Err() == nil {
					u.log.Warn("users: wake-up channel", "err", err)
				}
				break
			}
			u.wake(ctx, msg.Payload)
		}
		stop()
		ps.Close()
		select {
		case <-ctx.Done():
		case <-time.After(u.cfg.RetryMin):
		}
	}
	return ctx.Err()
}

// HandleNotify answers a NOTIFY: it routes it by Call-ID to the subscription it belongs
// to and answers 481 when there is none. Mount it with Adapter.OnRequest(sip.NOTIFY, ...).
func (u *Users) HandleNotify(req *sip.Request, tx sip.ServerTransaction) {
	cid := req.CallID()
	var s *subscription
	if cid != nil {
		u.mu.Lock()
		s = u.subs[cid.Value()]
		u.mu.Unlock()
	}
	if s == nil {
		u.met.notifies.WithLabelValues("no_subscription").Inc()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Subscription Does Not Exist")
		return
	}
	s.handleNotify(req, tx)
}

func (u *Users) bindSub(callID string, s *subscription) {
	u.mu.Lock()
	u.subs[callID] = s
	u.mu.Unlock()
}

func (u *Users) unbindSub(callID string) {
	u.mu.Lock()
	delete(u.subs, callID)
	u.mu.Unlock()
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
}

// releaseLease drops the lease if it is still ours (compare and delete).
func (u *Users) releaseLease(user, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = userReleaseScript.Run(ctx, u.st.Redis(), []string{u.keys.lease(user)}, token).Err()
}
