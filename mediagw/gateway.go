package mediagw

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Gateway is the media gateway: terminations, their relays, the HTTP API and the
// WebSocket attach handler. Create it with New, run its timers with Run, mount APIHandler
// under /v1/ and MediaHandler under /media/.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	m        *metrics
	ports    *portPool
	upgrader websocket.Upgrader
	events   chan pendingEvent
	// bufs holds packet buffers of MaxPacket bytes for the WebSocket send queues, so
	// the UDP side does not allocate per packet.
	bufs sync.Pool

	mu     sync.RWMutex // guards terms and closed
	terms  map[string]*termination
	closed bool

	running   atomic.Bool
	closeOnce sync.Once
	// wg tracks the OnEvent callback goroutines; terminations wait for their own.
	wg sync.WaitGroup
}

// New checks cfg, fills its defaults and registers the metrics on reg (nil: a private
// registry, so the metrics are kept but not exported). A nil log discards. The gateway
// serves the API at once; timeouts and event delivery need Run.
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{
		cfg:    cfg,
		log:    log.With("component", "mediagw"),
		ports:  newPortPool(net.ParseIP(cfg.BindAddr), cfg.PortMin, cfg.PortMax),
		events: make(chan pendingEvent, cfg.EventQueue),
		terms:  map[string]*termination{},
	}
	g.bufs.New = func() any { b := make([]byte, 0, cfg.MaxPacket); return &b }
	g.upgrader = websocket.Upgrader{
		// Small buffers: messages are single RTP packets, and a thousand calls each hold two.
		ReadBufferSize:  2048,
		WriteBufferSize: 2048,
		CheckOrigin:     g.checkOrigin,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			writeError(w, status, CodeBadRequest, "mediagw: websocket: "+reason.Error())
		},
	}
	if g.m, err = newMetrics(g, reg); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Gateway) checkOrigin(r *http.Request) bool {
	if len(g.cfg.AllowedOrigins) == 0 {
		return true
	}
	return slices.Contains(g.cfg.AllowedOrigins, r.Header.Get("Origin"))
}

// Run checks timeouts and delivers events until ctx ends, then ends every termination
// (notifying owners with a shutdown event) and returns nil.
func (g *Gateway) Run(ctx context.Context) error {
	if !g.running.CompareAndSwap(false, true) {
		return fmt.Errorf("mediagw: Run called twice")
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.deliverEvents(ctx) }()
	tick := time.NewTicker(g.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			g.Close()
			return nil
		case now := <-tick.C:
			g.sweep(now)
		}
	}
}

// Close ends every termination, notifying owners with a shutdown event (a last, single
// delivery attempt), and waits for every goroutine. Safe to call twice.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		terms := make([]*termination, 0, len(g.terms))
		for _, t := range g.terms {
			terms = append(terms, t)
		}
		clear(g.terms)
		g.mu.Unlock()
		// Shutdown notices go out concurrently with a short common deadline: the process
		// is stopping, and an owner that misses one finds the termination gone anyway.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for _, t := range terms {
			t.close()
			g.m.ended.WithLabelValues(string(EventShutdown)).Inc()
			ev := t.event(EventShutdown, "media gateway stopped")
			if fn := g.cfg.OnEvent; fn != nil {
				g.wg.Add(1)
				go func() { defer g.wg.Done(); fn(ev) }()
			}
			if t.eventURL == "" {
				continue
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				body, _ := jsonMarshal(ev)
				result := "delivered"
				if err := g.postEvent(ctx, t.eventURL, body); err != nil {
					result = "failed"
				}
				g.m.events.WithLabelValues(string(ev.Type), result).Inc()
			}()
		}
		wg.Wait()
		g.wg.Wait()
		if len(terms) > 0 {
			g.log.Info("media gateway stopped", "terminations_ended", len(terms))
		}
	})
	return nil
}

// sweep ends terminations whose setup or media timed out.
func (g *Gateway) sweep(now time.Time) {
	nowNs := now.UnixNano()
	for _, t := range g.snapshotTerms() {
		p := t.peer.Load()
		switch {
		case p == nil:
			if now.Sub(t.created) > g.cfg.SetupTimeout {
				g.end(t, EventSetupTimeout, fmt.Sprintf("no remote within %s", g.cfg.SetupTimeout))
			}
		case !p.hold:
			last := max(t.lastPacket.Load(), t.clockStart.Load())
			if time.Duration(nowNs-last) > g.cfg.MediaTimeout {
				g.end(t, EventMediaTimeout, fmt.Sprintf("no media either way for %s", g.cfg.MediaTimeout))
			}
		}
	}
}

// end removes t (if still registered), closes it and notifies its owner.
func (g *Gateway) end(t *termination, typ EventType, reason string) {
	g.mu.Lock()
	if g.terms[t.id] != t {
		g.mu.Unlock()
		return
	}
	delete(g.terms, t.id)
	g.mu.Unlock()
	t.close()
	g.m.ended.WithLabelValues(string(typ)).Inc()
	t.log.Info("termination ended", "reason", typ, "detail", reason)
	g.notify(t.eventURL, t.event(typ, reason))
}

func (g *Gateway) lookup(id string) *termination {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.terms[id]
}

func (g *Gateway) count() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.terms)
}

// snapshotTerms returns the live terminations sorted by id.
func (g *Gateway) snapshotTerms() []*termination {
	g.mu.RLock()
	out := make([]*termination, 0, len(g.terms))
	for _, t := range g.terms {
		out = append(out, t)
	}
	g.mu.RUnlock()
	slices.SortFunc(out, func(a, b *termination) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return out
}

func newID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("mediagw: termination id: %w", err)
	}
	return "t-" + hex.EncodeToString(b[:]), nil
}
