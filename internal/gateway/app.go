package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"dsmgw/asadapter"
	"dsmgw/asadapter/users"
	"dsmgw/mediagw"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// App holds the wired components of one gateway process.
type App struct {
	cfg  Config
	log  *slog.Logger // the gateway's own lines
	clog *slog.Logger // given to components: they add their component key (and some the instance)
	ilog *slog.Logger // clog with the instance, for components that do not add it themselves

	reg      *prometheus.Registry
	mux      *http.ServeMux
	listener net.Listener
	rdb      redis.UniversalClient
	st       *store.Store
	feed     *store.Feed
	bridge   *otbridge.Bridge
	janitor  *store.Janitor
	mgw      *mediagw.Gateway
	adapter  *asadapter.Adapter
	mgwPool  *asadapter.MediaGatewayPool // several media gateways apart (MGW_URL lists them); nil otherwise
	users    *users.Users
	srv      *http.Server

	// metricsListener and metricsSrv serve /metrics apart when METRICS_ADDR is set.
	metricsListener net.Listener
	metricsSrv      *http.Server

	closeOnce sync.Once
}

// Build constructs every component of the configured roles, one function per role on top
// of the common part (metrics, HTTP listener, Redis, store and feed). It binds the HTTP
// and SIP listeners, so a port conflict fails here, before anything runs; on any error
// it closes what it had opened. A nil log discards.
func Build(ctx context.Context, cfg Config, log *slog.Logger, opts ...Option) (_ *App, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		if o.listener != nil {
			o.listener.Close()
		}
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &App{
		cfg:  cfg,
		log:  log.With("component", "gateway", "instance", cfg.Instance),
		clog: log,
		ilog: log.With("instance", cfg.Instance),
	}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if err := a.buildCommon(o); err != nil {
		return nil, err
	}
	if cfg.Has(RoleBridge) {
		if err := a.buildBridge(o); err != nil {
			return nil, err
		}
	}
	if cfg.Has(RoleWeb) {
		if err := a.buildWeb(); err != nil {
			return nil, err
		}
	}
	// The AS adapter learns of media events through ev: in process when the media gateway
	// runs here, over signed HTTP posts otherwise.
	ev := &eventRelay{}
	if cfg.Has(RoleMediaGW) {
		if err := a.buildMediaGW(ev); err != nil {
			return nil, err
		}
	}
	if cfg.Has(RoleASAdapter) {
		if err := a.buildASAdapter(o, ev); err != nil {
			return nil, err
		}
	}
	a.srv = &http.Server{
		Handler: a.mux,
		// A slow client may not hold a connection open by trickling headers.
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	return a, nil
}

// Close releases what Build opened (listeners, media ports, Redis connections) without
// running anything: for a caller that built an App and will not Run it. Run closes
// everything itself. It is safe to call twice.
func (a *App) Close() {
	a.closeOnce.Do(func() {
		if a.listener != nil {
			a.listener.Close()
		}
		if a.metricsListener != nil {
			a.metricsListener.Close()
		}
		if a.adapter != nil {
			a.adapter.Close()
		}
		if a.mgw != nil {
			a.mgw.Close()
		}
		if a.rdb != nil {
			a.rdb.Close()
		}
	})
}

// handoffTimeout bounds the handoff of registrations on SIGTERM: another instance claims
// a released user within milliseconds and registers it in one REGISTER round trip; 5 s
// covers a loaded CSCF, and is what the last instance of a deployment waits in vain.
const handoffTimeout = 5 * time.Second

// Run runs every component until soft ends (drain, then stop) or hard ends (stop now).
func (a *App) Run(soft, hard context.Context) error {
	defer a.Close()
	ctx, cancel := context.WithCancel(hard)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)

	// The feed sets notify-keyspace-events on every Redis node at every (re)connection
	// and keeps checking it (unless DSM_NO_KEYSPACE).
	g.Go(func() error { return a.feed.Run(gctx) })
	if a.bridge != nil {
		g.Go(func() error { return a.bridge.Run(gctx) })
	}
	if a.janitor != nil {
		g.Go(func() error { return a.janitor.Run(gctx) })
	}
	if a.mgw != nil {
		g.Go(func() error { return a.mgw.Run(gctx) })
	}
	if a.mgwPool != nil {
		g.Go(func() error { return a.mgwPool.Run(gctx) })
	}
	if a.adapter != nil {
		g.Go(func() error { return a.adapter.Run(gctx) })
		g.Go(func() error { return a.users.Run(gctx) })
	}
	g.Go(func() error {
		err := a.srv.Serve(a.listener)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("http: %w", err)
	})
	if a.metricsSrv != nil {
		g.Go(func() error {
			if err := a.metricsSrv.Serve(a.metricsListener); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("metrics http: %w", err)
			}
			return nil
		})
	}
	a.log.Info("gateway running", "http", a.listener.Addr().String(), "roles", a.cfg.Roles)

	// Wait for a signal (or a component failing), then shut down with a fresh context:
	// the signal context is already done.
	select {
	case <-soft.Done():
	case <-gctx.Done():
	}
	drainCtx, stop := context.WithTimeout(context.Background(), a.cfg.Drain)
	defer stop()
	if hard.Err() == nil && soft.Err() != nil && a.adapter != nil {
		a.drainCalls(drainCtx)
	}
	if err := a.srv.Shutdown(drainCtx); err != nil {
		a.log.Warn("http shutdown", "err", err)
	}
	if a.metricsSrv != nil {
		if err := a.metricsSrv.Shutdown(drainCtx); err != nil {
			a.log.Warn("metrics http shutdown", "err", err)
		}
	}
	cancel()
	err := g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil // every component ends with ctx's error once we cancel it
	}
	a.Close()
	a.log.Info("gateway stopped")
	return err
}

// drainCalls is the call side of a graceful shutdown, in the order that loses no call:
// the instance stops taking new calls (the others do), hands its registrations to other
// instances (which register their own contacts, so incoming calls go to them; until then
// they still come here and are answered), lets its calls go on for Grace, then hangs up
// the rest.
func (a *App) drainCalls(ctx context.Context) {
	t0 := time.Now()
	a.log.Info("SIGTERM: draining", "timeout", a.cfg.Drain, "grace", a.cfg.Grace)
	a.adapter.StopTaking()
	hctx, cancel := context.WithTimeout(ctx, handoffTimeout)
	moved, left := a.users.Handoff(hctx)
	cancel()
	a.log.Info("registrations handed off", "moved", moved, "left", left)
	if a.cfg.Grace > 0 {
		gctx, cancel := context.WithTimeout(ctx, a.cfg.Grace)
		n := a.adapter.WaitCalls(gctx)
		cancel()
		a.log.Info("calls after the grace", "left", n, "grace", a.cfg.Grace)
	}
	n := a.adapter.HangupAll(ctx)
	a.log.Info("hung up calls", "calls", n, "drain_took", time.Since(t0).Round(time.Millisecond))
}

// Ready reports nil when Redis answers and the feed readers (and the bridge) are running:
// connections made from then on see every later commit. /readyz answers with it.
func (a *App) Ready(ctx context.Context) error {
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if !a.feed.Ready() {
		return errors.New("feed readers not running")
	}
	if a.bridge != nil && !a.bridge.Ready() {
		return errors.New("bridge not running")
	}
	return nil
}

// readyz answers 200 when Ready does, with the state of keyspace notifications on every
// Redis node as detail. Missing notifications do not make an instance unready: commits,
// the feed and calls work without them; only writes made outside the commit path go
// unnoticed, and the detail and the dsm_keyspace_notifications metric say so.
func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := a.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
	} else {
		fmt.Fprintln(w, "ready")
	}
	fmt.Fprintln(w, a.feed.Keyspace())
}

// Addr is the address the HTTP server listens on.
func (a *App) Addr() net.Addr { return a.listener.Addr() }

// MetricsAddr is the address /metrics is served on: its own listener's with
// METRICS_ADDR, else the HTTP server's.
func (a *App) MetricsAddr() net.Addr {
	if a.metricsListener != nil {
		return a.metricsListener.Addr()
	}
	return a.listener.Addr()
}

// Store is the process's DSM store (callbench commits its players through it, sharing
// the gateway's Redis pool as browsers' ops through the bridge would).
func (a *App) Store() *store.Store { return a.st }
