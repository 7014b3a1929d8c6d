// Package users is the users side of the AS adapter: it registers web users at the CSCF on
// their browsers' behalf (the registration HTTP API, or in demo mode the demo page's own
// sign-in, demo.go; and one REGISTER worker per user held here), subscribes to the conferences they may join (SUBSCRIBE/NOTIFY, RFC 4575) and
// mirrors both into the DSM's users structure (users/<user> and users/<user>/conf/<id>).
// It sends and receives through the call controller's SIP listeners, seen only through
// the small sipport.Port seam: nothing here knows of calls.
package users

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"dsmgw/asadapter/confinfo"
	"dsmgw/asadapter/sipport"
	"dsmgw/store"
)

// Config configures Users. Zero values take the defaults of DefaultConfig.
type Config struct {
	// Instance names this gateway instance in leases and logs. Required (the gateway's
	// configuration defaults it; pass the Adapter's Instance()).
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
	// MaxParticipants caps the fields written to one participant list (0, the default:
	// the store's MaxFields, which the commit script enforces).
	MaxParticipants int
	// ConfInfo bounds NOTIFY bodies (confinfo.DefaultLimits; zero fields take those).
	ConfInfo confinfo.Limits
	// DemoDomain turns the demo sign-in on (demo.go): a page signed in with a demo session
	// is registered as sip:<user>@DemoDomain while it refreshes its sign_in field. ""
	// (the default) leaves it off: only the HTTP API registers users.
	DemoDomain string
	// DemoPassword is the digest password of every demo user (digest user name: the user
	// name); "" registers demo users without credentials (a CSCF that does not challenge).
	DemoPassword string
	// KeyPrefix prefixes the Redis keys of registrations and leases ("asadapter:", shared
	// with call control's keys, whose names do not collide).
	KeyPrefix string
}

// DefaultConfig returns every knob at its default (Instance and Secret, which have none,
// empty).
func DefaultConfig() Config {
	return Config{
		Expires:          600 * time.Second,
		SubscribeExpires: 600 * time.Second,
		SessionTTL:       120 * time.Second,
		LeaseTTL:         15 * time.Second,
		Scan:             2 * time.Second,
		RetryMin:         2 * time.Second,
		RetryMax:         60 * time.Second,
		RequestTimeout:   32 * time.Second,
		ConfInfo:         confinfo.DefaultLimits(),
		KeyPrefix:        "asadapter:",
	}
}

// withDefaults checks c and fills its zero fields from DefaultConfig (MaxParticipants from
// the store's limits).
func (c Config) withDefaults(st *store.Store) (Config, error) {
	if c.Instance == "" {
		return c, fmt.Errorf("%w: Instance is required", ErrConfig)
	}
	if c.Secret == "" {
		return c, fmt.Errorf("%w: Users needs the HTTP API secret", ErrConfig)
	}
	d := DefaultConfig()
	for _, f := range []struct{ v, def *time.Duration }{
		{&c.Expires, &d.Expires}, {&c.SubscribeExpires, &d.SubscribeExpires},
		{&c.SessionTTL, &d.SessionTTL}, {&c.LeaseTTL, &d.LeaseTTL}, {&c.Scan, &d.Scan},
		{&c.RetryMin, &d.RetryMin}, {&c.RetryMax, &d.RetryMax}, {&c.RequestTimeout, &d.RequestTimeout},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = c.RetryMin
	}
	if c.MaxParticipants <= 0 {
		c.MaxParticipants = st.Config().MaxFields
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = d.KeyPrefix
	}
	// ConfInfo's zero fields are filled by confinfo.Parse itself, from the same defaults.
	if c.DemoDomain != "" {
		var u sip.Uri
		if err := sip.ParseUri("sip:demo@"+c.DemoDomain, &u); err != nil || u.Host == "" {
			return c, fmt.Errorf("%w: DemoDomain %q is not a SIP domain", ErrConfig, c.DemoDomain)
		}
	}
	if c.Registrar != "" {
		var u sip.Uri
		if err := sip.ParseUri(c.Registrar, &u); err != nil {
			return c, fmt.Errorf("%w: Registrar %q: %v", ErrConfig, c.Registrar, err)
		}
	}
	return c, nil
}

// Users registers web users at the CSCF on their browsers' behalf and subscribes to the
// conferences they may join, mirroring the state into the DSM's users structure
// (users/<user> and users/<user>/conf/<id>). The web server drives it through the HTTP
// API (HTTPHandler); every gateway instance runs one, and each user is held by exactly one
// instance at a time through a lease in Redis.
type Users struct {
	cfg    Config
	sip    sipport.Port
	st     *store.Store
	feed   *store.Feed
	log    *slog.Logger
	schema *store.Schema
	keys   userKeys
	met    *metrics
	seal   *sealer // SIP passwords at rest
	// demo carries the demo sign-in writes from the feed reader to demoLoop; nil when
	// the demo sign-in is off.
	demo chan signIn

	mu      sync.Mutex             // guards workers, subs, runCtx and handingOff
	workers map[string]*userWorker // user → worker of a user this instance holds
	subs    map[string]*subscription
	// handingOff is set by Handoff: the instance is going and claims no user.
	handingOff bool
	// wg owns the workers: Run waits for them. A worker owns its subscriptions' goroutines
	// and waits for them before it ends.
	wg     sync.WaitGroup
	runCtx context.Context // Run's context, for the workers it starts; nil before Run
}

// New builds the users side. port is normally the *asadapter.Adapter; its NOTIFY requests
// must be routed to HandleNotify. A nil reg keeps the metrics private; a nil log discards.
func New(cfg Config, port sipport.Port, st *store.Store, feed *store.Feed, reg prometheus.Registerer, log *slog.Logger) (*Users, error) {
	if port == nil || st == nil || feed == nil {
		return nil, fmt.Errorf("%w: Users needs a SIP port, a store and a feed", ErrConfig)
	}
	cfg, err := cfg.withDefaults(st)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	seal, err := newSealer(cfg.Secret)
	if err != nil {
		return nil, err
	}
	var demo chan signIn
	if cfg.DemoDomain != "" {
		demo = make(chan signIn, demoQueue)
	}
	return &Users{
		demo:    demo,
		seal:    seal,
		cfg:     cfg,
		sip:     port,
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

// Run claims and drives registrations until ctx ends, and returns once every worker it
// started has ended. When ctx ends, the users held here are released without
// unregistering (another instance takes them over and removes our stale contact); use the
// HTTP DELETE to log a user out.
func (u *Users) Run(ctx context.Context) error {
	u.mu.Lock()
	u.runCtx = ctx
	u.mu.Unlock()
	unsub := u.feed.Subscribe(u.onChange)
	defer unsub()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return u.wakeLoop(gctx) })
	g.Go(func() error { return u.scanLoop(gctx) })
	if u.demo != nil {
		g.Go(func() error { return u.demoLoop(gctx) })
	}
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
	if s, ok := u.demoWrite(c); ok {
		u.queueDemo(s)
	}
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
