// Command imsdemo runs the demo conference server: conference rooms
// sip:<room>@<IMSDEMO_DOMAIN> created on the first INVITE, an audio mixer for G.711,
// RFC 4575 conference state to subscribers, and an echo service, behind the demo CSCF
// (deploy/kamailio.cfg relays the conference domain to it). It stands in for an IMS
// conference application server and MRFP; see docs/imsdemo.md for what it is not.
//
// Configuration comes from the environment (IMSDEMO_*, see env.go and the docs). JSON
// logs go to stderr; /healthz answers on IMSDEMO_HTTP_ADDR. SIGTERM or SIGINT drains:
// every participant gets a BYE and every subscriber a terminating NOTIFY, within
// IMSDEMO_DRAIN; a second signal stops at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"dsmgw/imsdemo"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "imsdemo:", err)
		os.Exit(1)
	}
}

func run() error {
	env, err := loadEnv()
	if err != nil {
		return err
	}
	log := newLogger(env.LogLevel)
	// The first signal drains (the server's Run returns once every session has ended);
	// a second one ends the process where it stands.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, os.Interrupt)
		<-again
		log.Warn("second signal: stopping now")
		os.Exit(1)
	}()

	srv, err := imsdemo.New(env.config(), log)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", srv.HealthHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	l, err := net.Listen("tcp", env.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", env.HTTPAddr, err)
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := srv.Run(gctx)
		// /healthz answered 503 during the drain; it stops once Run is over, with a
		// fresh context (the run's one is done).
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := hs.Shutdown(sctx); err == nil {
			err = serr
		}
		return err
	})
	g.Go(func() error {
		if err := hs.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	log.Info("health on http://" + l.Addr().String() + "/healthz")
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
