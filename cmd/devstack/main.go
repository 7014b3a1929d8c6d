// Command devstack runs the whole system on one machine without Docker: a private
// redis-server, Kamailio as the CSCF and a baresip phone registered as "bob" (each when
// installed, from Debian's packages), and one gateway process with every role. Open the
// printed URL and call sip:bob@sip.dsmgw.test. Ctrl-C stops everything it started.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"dsmgw/internal/gateway"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run() error {
	base := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log := base.With("component", "devstack") // the gateway's components add their own
	hard, stopHard := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stopHard()
	soft, stopSoft := signal.NotifyContext(hard, syscall.SIGTERM)
	defer stopSoft()

	dir, err := os.MkdirTemp("", "dsmgw-devstack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rs, err := startRedis(hard, dir)
	if err != nil {
		return err
	}
	defer func() {
		rs.Stop()
		log.Info("stopped", "cmd", "redis-server", "pid", rs.PID())
	}()
	// Deferred after Redis: stopped before it, the phone first.
	procs := &processes{dir: dir}
	defer procs.stop(log)

	setDefault("REDIS_ADDRS", rs.Addr)
	setDefault("HTTP_ADDR", "127.0.0.1:8080")
	setDefault("DSM_SECRET", "devstack-dsm-secret-0123456789")
	setDefault("DSM_DEMO_SESSIONS", "true") // the demo page's /session?user=<name>
	setDefault("MGW_SECRET", "devstack-mgw-secret-0123456789")
	setDefault("USERS_SECRET", "devstack-users-secret-0123456789")
	setDefault("MGW_PUBLIC_WS_URL", "ws://127.0.0.1:8080")
	setDefault("SIP_LISTEN_UDP", "127.0.0.1:5070")
	setDefault("SIP_LISTEN_TCP", "127.0.0.1:5070")
	setDefault("SIP_DOMAIN", sipDomain)

	root, err := repoRoot()
	if err != nil {
		return err
	}
	if sip, err := procs.startKamailio(root); err != nil {
		log.Warn("no CSCF: calls go directly to the request URI", "err", err)
	} else {
		setDefault("SIP_OUTBOUND_PROXY", "sip:"+sip)
		setDefault("USERS_REGISTRAR", "sip:"+sipDomain)
		if err := procs.startBaresip(root, sip); err != nil {
			log.Warn("no phone to call", "err", err)
		} else {
			log.Info("phone bob registered at the CSCF; call sip:bob@" + sipDomain)
		}
	}

	cfg, err := gateway.LoadConfig()
	if err != nil {
		return err
	}
	app, err := gateway.Build(hard, cfg, base)
	if err != nil {
		return err
	}
	log.Info("open http://" + app.Addr().String())
	err = app.Run(soft, hard)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// sipDomain is the SIP domain Kamailio serves in the demo.
const sipDomain = "sip.dsmgw.test"

func setDefault(k, v string) {
	if _, ok := os.LookupEnv(k); !ok {
		os.Setenv(k, v)
	}
}

// repoRoot finds the checkout (for deploy/ configs) from the working directory upward.
func repoRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "deploy", "kamailio.cfg")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", errors.New("run devstack from inside the dsmgw checkout (deploy/ not found)")
		}
		d = p
	}
}
