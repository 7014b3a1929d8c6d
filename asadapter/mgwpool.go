package asadapter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"dsmgw/asadapter/sdp"
	"dsmgw/mediagw"
	"dsmgw/store"
)

// Several media gateway instances (the mediagw role running apart from the AS adapter,
// GATEWAY_ROLES, with MGW_URL listing them): new terminations go to the live ones in
// turn; each is checked every PoolCheck; when one is lost, every call whose termination
// it held moves its media to another the way a takeover does (a new termination and a
// re-INVITE, call_resume.go), and a media gateway that stops gracefully (its shutdown
// event) has its calls moved the same way.

// PoolConfig configures a MediaGatewayPool.
type PoolConfig struct {
	// Owner names this adapter instance in the terminations it creates.
	Owner string
	// EventURL is where the media gateways POST their events for this adapter.
	EventURL string
	// Check is how often each media gateway is asked whether it lives (250 ms: a lost
	// one is noticed within half a second, against the second of a lost AS adapter's
	// lease, and a check is one small request).
	Check time.Duration
	// CheckTimeout bounds one check (500 ms: a media gateway answers in a millisecond;
	// one cut off by a partition never does).
	CheckTimeout time.Duration
	// FailAfter is how many checks in a row must fail before a media gateway counts as
	// lost (2: one lost packet or a paused process is not a loss).
	FailAfter int
}

// DefaultPoolConfig returns every knob of PoolConfig at its default.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{Check: 250 * time.Millisecond, CheckTimeout: 500 * time.Millisecond, FailAfter: 2}
}

func (c PoolConfig) withDefaults() PoolConfig {
	d := DefaultPoolConfig()
	if c.Check <= 0 {
		c.Check = d.Check
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = d.CheckTimeout
	}
	if c.FailAfter <= 0 {
		c.FailAfter = d.FailAfter
	}
	return c
}

// avoidAfterShutdown is how long a media gateway that announced its shutdown gets no new
// termination: it is stopping, and answers its checks until it is gone.
const avoidAfterShutdown = 30 * time.Second

// probeID is the termination a check asks for: none has this id, so a live media gateway
// answers 404 at once, after checking our secret.
const probeID = "liveness-probe"

// MediaGatewayPool is a MediaGateway over several media gateway instances.
type MediaGatewayPool struct {
	cfg     PoolConfig
	members []*poolMember
	log     *slog.Logger
	next    atomic.Uint32

	mu    sync.Mutex             // guards where and lost
	where map[string]*poolMember // termination id → the member holding it
	lost  func(terms []string)   // the adapter's handler of a lost member's terminations
}

// poolMember is one media gateway of a pool. up and avoidUntil are read by AddLocal on
// any goroutine; fails belongs to Run's goroutine.
type poolMember struct {
	c          *mediagw.Client
	name       string
	up         atomic.Bool
	avoidUntil atomic.Int64 // unix ns before which it gets no new termination
	fails      int
}

var (
	_ MediaGateway = (*MediaGatewayPool)(nil)
	_ mediaMover   = (*MediaGatewayPool)(nil)
)

// NewMediaGatewayPool makes a pool of the media gateways behind clients (names: their
// base URLs, for logs). A nil log discards.
func NewMediaGatewayPool(cfg PoolConfig, clients []*mediagw.Client, names []string, log *slog.Logger) (*MediaGatewayPool, error) {
	if len(clients) == 0 || len(names) != len(clients) {
		return nil, fmt.Errorf("%w: a media gateway pool needs clients, one name each", ErrConfig)
	}
	if cfg.Owner == "" {
		return nil, fmt.Errorf("%w: a media gateway pool needs its owner", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &MediaGatewayPool{cfg: cfg.withDefaults(), log: log.With("component", "mgwpool"), where: map[string]*poolMember{}}
	for i, c := range clients {
		m := &poolMember{c: c, name: names[i]}
		m.up.Store(true) // until a check says otherwise
		p.members = append(p.members, m)
	}
	return p, nil
}

// onLoss sets the handler of a lost member's terminations (the adapter's, set by New).
func (p *MediaGatewayPool) onLoss(fn func(terms []string)) {
	p.mu.Lock()
	p.lost = fn
	p.mu.Unlock()
}

// Run checks the members until ctx ends.
func (p *MediaGatewayPool) Run(ctx context.Context) error {
	t := time.NewTicker(p.cfg.Check)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		var wg sync.WaitGroup
		ok := make([]bool, len(p.members))
		for i, m := range p.members {
			wg.Go(func() {
				cctx, cancel := context.WithTimeout(ctx, p.cfg.CheckTimeout)
				defer cancel()
				_, err := m.c.Get(cctx, probeID)
				ok[i] = errors.Is(err, mediagw.ErrNotFound)
			})
		}
		wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		for i, m := range p.members {
			p.checked(m, ok[i])
		}
	}
}

// checked records one check of m: a member failing FailAfter checks in a row is lost, and
// its calls move; one answering again takes new terminations again.
func (p *MediaGatewayPool) checked(m *poolMember, ok bool) {
	if ok {
		m.fails = 0
		if !m.up.Swap(true) {
			// Answering again after it was lost: a new process (or a healed partition),
			// not the stopping one a shutdown event made us avoid, which this pool's
			// moving of its calls (canMove) would otherwise keep out of new calls for
			// the rest of avoidAfterShutdown.
			m.avoidUntil.Store(0)
			p.log.Info("media gateway back", "mgw", m.name)
		}
		return
	}
	m.fails++
	if m.fails < p.cfg.FailAfter || !m.up.Swap(false) {
		return
	}
	p.mu.Lock()
	var terms []string
	for id, w := range p.where {
		if w == m {
			terms = append(terms, id)
		}
	}
	fn := p.lost
	p.mu.Unlock()
	p.log.Warn("media gateway lost; moving its calls", "mgw", m.name, "terminations", len(terms))
	if fn != nil && len(terms) > 0 {
		fn(terms)
	}
}

// pick returns the next member that takes new terminations (any member if none does).
func (p *MediaGatewayPool) pick() *poolMember {
	now := time.Now().UnixNano()
	n := len(p.members)
	start := int(p.next.Add(1))
	for i := range n {
		m := p.members[(start+i)%n]
		if m.up.Load() && m.avoidUntil.Load() < now {
			return m
		}
	}
	return p.members[start%n]
}

// member returns the member holding a termination, or nil.
func (p *MediaGatewayPool) member(id string) *poolMember {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.where[id]
}

// AddLocal implements MediaGateway.
func (p *MediaGatewayPool) AddLocal(ctx context.Context, req LocalRequest) (Local, error) {
	m := p.pick()
	t, err := m.c.AddLocal(ctx, mediagw.AddLocalRequest{Owner: p.cfg.Owner, CallID: req.CallID,
		Player: req.Player, EventURL: p.cfg.EventURL, Gated: req.Gated})
	if err != nil {
		return Local{}, fmt.Errorf("media gateway %s: %w", m.name, err)
	}
	p.mu.Lock()
	p.where[t.ID] = m
	p.mu.Unlock()
	return Local{ID: t.ID, Addr: t.Address, Port: t.RTPPort}, nil
}

// client returns the client of the member holding a termination.
func (p *MediaGatewayPool) client(id string) (*MediaGatewayClient, error) {
	m := p.member(id)
	if m == nil {
		return nil, fmt.Errorf("termination %s: %w", id, mediagw.ErrNotFound)
	}
	return &MediaGatewayClient{c: m.c, owner: p.cfg.Owner, eventURL: p.cfg.EventURL}, nil
}

// AddRemote implements MediaGateway.
func (p *MediaGatewayPool) AddRemote(ctx context.Context, id string, r sdp.Remote) (string, error) {
	c, err := p.client(id)
	if err != nil {
		return "", err
	}
	return c.AddRemote(ctx, id, r)
}

// Modify implements MediaGateway.
func (p *MediaGatewayPool) Modify(ctx context.Context, id string, r sdp.Remote) error {
	c, err := p.client(id)
	if err != nil {
		return err
	}
	return c.Modify(ctx, id, r)
}

// NewURL implements MediaGateway.
func (p *MediaGatewayPool) NewURL(ctx context.Context, id string) (string, error) {
	c, err := p.client(id)
	if err != nil {
		return "", err
	}
	return c.NewURL(ctx, id)
}

// DTMF implements MediaGateway.
func (p *MediaGatewayPool) DTMF(ctx context.Context, id, digits string) error {
	c, err := p.client(id)
	if err != nil {
		return err
	}
	return c.DTMF(ctx, id, digits)
}

// Termination implements MediaGateway.
func (p *MediaGatewayPool) Termination(ctx context.Context, id string) (mediagw.Termination, error) {
	c, err := p.client(id)
	if err != nil {
		return mediagw.Termination{}, err
	}
	return c.Termination(ctx, id)
}

// Gate implements MediaGateway.
func (p *MediaGatewayPool) Gate(ctx context.Context, id string, open bool) error {
	c, err := p.client(id)
	if err != nil {
		return err
	}
	return c.Gate(ctx, id, open)
}

// Delete implements MediaGateway. A termination this pool did not create (one a lost
// instance left, found in a dialog record) is deleted wherever it is.
func (p *MediaGatewayPool) Delete(ctx context.Context, id string) error {
	p.mu.Lock()
	m := p.where[id]
	delete(p.where, id)
	p.mu.Unlock()
	members := p.members
	if m != nil {
		members = []*poolMember{m}
	}
	var errs []error
	for _, m := range members {
		if !m.up.Load() {
			continue // gone, and its terminations with it (or it ends them by timeout)
		}
		c := &MediaGatewayClient{c: m.c, owner: p.cfg.Owner}
		if err := c.Delete(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("media gateway %s: %w", m.name, err))
		}
	}
	return errors.Join(errs...)
}

// canMove implements mediaMover: the member holding term gets no new termination for a
// while (it is stopping), and another member must take the call.
func (p *MediaGatewayPool) canMove(term string) bool {
	if m := p.member(term); m != nil {
		m.avoidUntil.Store(time.Now().Add(avoidAfterShutdown).UnixNano())
	}
	now := time.Now().UnixNano()
	for _, m := range p.members {
		if m.up.Load() && m.avoidUntil.Load() < now {
			return true
		}
	}
	return false
}

// mediaMover is a MediaGateway that can place a call's media on another media gateway
// instance than the one holding its termination (MediaGatewayPool).
type mediaMover interface {
	canMove(term string) bool
	onLoss(fn func(terms []string))
}

// mediaLost moves the media of the calls whose terminations a lost media gateway held;
// a call that cannot move (not answered yet) fails.
func (a *Adapter) mediaLost(terms []string) {
	lost := make(map[string]bool, len(terms))
	for _, t := range terms {
		lost[t] = true
	}
	a.cmu.Lock()
	var cs []*call
	for _, c := range a.calls {
		cs = append(cs, c)
	}
	a.cmu.Unlock()
	for _, c := range cs {
		c.mu.Lock()
		hit := lost[c.d.Term]
		c.mu.Unlock()
		if !hit || c.moveMedia("media gateway lost") {
			continue
		}
		ctx, cancel := c.cleanupCtx()
		if err := c.commit(ctx, append(a.failOps(0, "media gateway lost"), store.Del(a.f.mgwURL))...); err != nil {
			c.log.Warn("mark player failed after its media gateway was lost", "err", err)
		}
		cancel()
		c.poke()
	}
}

// moveMedia asks the call's goroutine to move its media to another media gateway (why is
// what the player shows if that fails); false when the call cannot: not answered yet, or
// no other media gateway to move to.
func (c *call) moveMedia(why string) bool {
	m, ok := c.a.mgw.(mediaMover)
	if !ok || !c.answered.Load() {
		return false
	}
	c.mu.Lock()
	term := c.d.Term
	c.mu.Unlock()
	if !m.canMove(term) {
		return false
	}
	select {
	case c.moveC <- why:
	default: // a move is already asked for
	}
	return true
}
