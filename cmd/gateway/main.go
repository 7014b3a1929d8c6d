// Command gateway runs dsmgw: the web server with the browser files, the DSM bridge
// (WebSocket), the AS adapter (SIP) and the media gateway (RTP relay), each switchable with
// GATEWAY_ROLES so the roles can also run as separate processes. Configuration comes from
// the environment (see Config and the README).
//
// SIGTERM drains: the AS adapter hangs up its calls, connections are closed with
// "going away", then the process stops within SHUTDOWN_DRAIN. SIGINT stops at once.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"dsmgw/internal/gateway"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := gateway.LoadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)

	// Two signal contexts: SIGTERM starts a drain, SIGINT (or a second signal) ends now.
	hard, stopHard := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stopHard()
	soft, stopSoft := signal.NotifyContext(hard, syscall.SIGTERM)
	defer stopSoft()

	app, err := gateway.Build(hard, cfg, log)
	if err != nil {
		return err
	}
	err = app.Run(soft, hard)
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
