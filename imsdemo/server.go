package imsdemo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"golang.org/x/sync/errgroup"

	"dsmgw/imsdemo/mixer"
)

// Server is the demo conference server: a SIP user agent that hosts conference rooms
// (sip:<room>@<domain>, created on the first INVITE or SUBSCRIBE), the echo service, a
// mixer per room on shared mixing clocks, and RFC 4575 conference state to subscribers.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	cli    *sipgo.Client
	udp    net.PacketConn
	tcp    net.Listener
	ports  map[string]int    // "udp"/"tcp" → bound SIP port
	laddrs map[string]string // "udp" → bound address, to send from the listener
	ports2 *portPool         // RTP ports
	scheds []*mixer.Scheduler

	draining atomic.Bool
	runCtx   atomic.Pointer[context.Context]
	wg       sync.WaitGroup // subscription senders and the janitor's session endings

	mu    sync.Mutex               // guards the maps below; taken before any room's mutex
	rooms map[roomKey]*room        // conference rooms and talk groups
	echo  map[*room]struct{}       // echo sessions: private rooms without a name to find
	legs  map[string]*leg          // by Call-ID
	subs  map[string]*subscription // by Call-ID
}

// New builds the server and binds its SIP listeners; Run serves. A nil log discards.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "imsdemo")
	s := &Server{cfg: cfg, log: log, rooms: map[roomKey]*room{}, echo: map[*room]struct{}{}, legs: map[string]*leg{},
		subs: map[string]*subscription{}, ports2: newPortPool(cfg.RTPBindAddr, cfg.RTPPortMin, cfg.RTPPortMax)}
	for range cfg.MixWorkers {
		s.scheds = append(s.scheds, mixer.NewScheduler())
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	// sipgo logs every unparsable datagram at error level; the demo keeps its own log
	// to what it does.
	sipLog := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("imsdemo"), sipgo.WithUserAgentHostname(cfg.Domain),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sipLog)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sipLog)))
	if err != nil {
		s.closeListeners()
		return nil, fmt.Errorf("imsdemo: user agent: %w", err)
	}
	s.ua = ua
	if s.srv, err = sipgo.NewServer(ua, sipgo.WithServerLogger(sipLog)); err == nil {
		s.cli, err = sipgo.NewClient(ua, sipgo.WithClientLogger(sipLog), sipgo.WithClientHostname(cfg.AdvertiseHost))
	}
	if err != nil {
		ua.Close()
		s.closeListeners()
		return nil, fmt.Errorf("imsdemo: sip server: %w", err)
	}
	s.srv.OnInvite(s.onInvite)
	s.srv.OnAck(s.onAck)
	s.srv.OnBye(s.onBye)
	s.srv.OnCancel(s.onCancel)
	s.srv.OnOptions(s.onOptions)
	s.srv.OnSubscribe(s.onSubscribe)
	return s, nil
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
}

// Run serves SIP and mixes until ctx ends, then drains: new sessions get 503, every
// participant gets a BYE and every subscriber a terminating NOTIFY (reason noresource),
// within DrainTimeout; then it closes everything.
func (s *Server) Run(ctx context.Context) error {
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	s.runCtx.Store(&runCtx)
	g, gctx := errgroup.WithContext(runCtx)
	for _, sc := range s.scheds {
		g.Go(func() error { return sc.Run(gctx) })
	}
	if s.udp != nil {
		g.Go(func() error { _ = s.srv.ServeUDP(s.udp); return nil })
	}
	if s.tcp != nil {
		g.Go(func() error { _ = s.srv.ServeTCP(s.tcp); return nil })
	}
	g.Go(func() error { s.janitor(gctx); return nil })
	s.log.Info("serving", "udp", s.Addr("udp"), "tcp", s.Addr("tcp"), "domain", s.cfg.Domain,
		"echo", s.RoomURI(s.cfg.EchoUser), "mix_workers", len(s.scheds))

	select {
	case <-ctx.Done():
	case <-gctx.Done(): // a part failed
	}
	s.drain()
	cancelRun()
	s.closeListeners()
	s.ua.Close()
	s.wg.Wait()
	err := g.Wait()
	s.log.Info("stopped")
	return err
}

// drain ends every session and subscription, bounded by DrainTimeout.
func (s *Server) drain() {
	s.draining.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	s.mu.Lock()
	legs := make([]*leg, 0, len(s.legs))
	for _, l := range s.legs {
		legs = append(legs, l)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, l := range legs {
		wg.Add(1)
		go func() { defer wg.Done(); l.end(ctx, discBooted, "conference server shutting down", true) }()
	}
	wg.Wait()
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.terminate("noresource", false)
	}
	for _, sub := range subs {
		select {
		case <-sub.done:
		case <-ctx.Done():
		}
	}
	s.log.Info("drained", "participants", len(legs), "subscriptions", len(subs))
}

// runContext returns Run's context (Background before Run).
func (s *Server) runContext() context.Context {
	if p := s.runCtx.Load(); p != nil {
		return *p
	}
	return context.Background()
}

// janitorEvery is the period of the housekeeping: media timeouts and subscription
// lifetimes are counted in seconds, so a second is precise enough.
const janitorEvery = time.Second

// janitor ends sessions without media, subscriptions not refreshed in time, and drops
// departed participants from the state once their linger time is over.
func (s *Server) janitor(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, r := range s.roomList() {
				r.expire(now)
				legs, subs := r.snapshot()
				for _, l := range legs {
					if l.timedOut(now) {
						// On its own goroutine: the BYE may wait for its answer.
						s.wg.Add(1)
						go func() { defer s.wg.Done(); l.end(ctx, discFailed, "media timeout", true) }()
					}
				}
				for _, sub := range subs {
					sub.mu.Lock()
					over := now.After(sub.expires)
					sub.mu.Unlock()
					if over {
						sub.terminate("timeout", false)
					}
				}
			}
		}
	}
}
