// Command devstack runs the whole system on one machine without Docker: a private
// redis-server, Kamailio as the CSCF, a baresip phone registered as "bob" that answers
// with a 440 Hz tone, the demo conference server (imsdemo, in this process) and one
// gateway process with every role. It checks before starting that every program is
// installed and every port free, and after starting that bob is registered (it asks
// Kamailio); when something is missing it stops and says how to fix it. It then prints
// where everything is, including the folder holding every log, which outlives it. Open
// the printed URL and call sip:bob@sip.dsmgw.test. Ctrl-C stops everything it started;
// SIGTERM drains the gateway's calls first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(2)
	}
	hard, stopHard := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stopHard()
	soft, stopSoft := signal.NotifyContext(hard, syscall.SIGTERM)
	defer stopSoft()
	if err := run(soft, hard, o); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		stopSoft()
		stopHard()
		os.Exit(1)
	}
}

// options are devstack's command line. The gateway itself is configured by the
// environment as in production (README's table); devstack only fills in, for variables
// left unset, what the local stack needs (devEnv).
type options struct {
	dir   string // where the logs go; "" makes a new folder under the temporary folder
	sip   bool   // run the SIP side (Kamailio, bob, the conference server)
	cscf  string // Kamailio's UDP and TCP address
	phone string // baresip's (bob's) SIP address
	conf  string // the conference server's SIP address (Kamailio's CONF_SERVER)
	out   io.Writer
}

func parseFlags(args []string) (options, error) {
	o := options{out: os.Stdout}
	fs := flag.NewFlagSet("devstack", flag.ContinueOnError)
	fs.StringVar(&o.dir, "logs", "", "folder for the logs (default: a new folder under $TMPDIR, printed at start and kept)")
	fs.BoolVar(&o.sip, "sip", true, "run the SIP side: Kamailio as the CSCF, bob (baresip) and the conference server")
	fs.StringVar(&o.cscf, "cscf", "127.0.0.1:5060", "Kamailio's SIP address (UDP and TCP)")
	fs.StringVar(&o.phone, "phone", "127.0.0.1:5080", "bob's (baresip's) SIP address")
	fs.StringVar(&o.conf, "conf", "127.0.0.1:5090", "the conference server's SIP address (Kamailio's default CONF_SERVER)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

// Names of the demo's SIP side (deploy/kamailio.cfg serves them).
const (
	sipDomain  = "sip.dsmgw.test"
	confDomain = "conf.sip.dsmgw.test"
)

// devEnv is the environment devstack gives the gateway for every variable the user
// left unset: loopback addresses, demo secrets, and the local CSCF.
func devEnv(o options) map[string]string {
	env := map[string]string{
		"HTTP_ADDR":         "127.0.0.1:8080",
		"DSM_SECRET":        "devstack-dsm-secret-0123456789",
		"DSM_DEMO_SESSIONS": "true", // the demo page's /session?user=<name>
		"MGW_SECRET":        "devstack-mgw-secret-0123456789",
		"USERS_SECRET":      "devstack-users-secret-0123456789",
		"MGW_PUBLIC_WS_URL": "ws://127.0.0.1:8080",
		"SIP_LISTEN_UDP":    "127.0.0.1:5070",
		"SIP_LISTEN_TCP":    "127.0.0.1:5070",
		"SIP_DOMAIN":        sipDomain,
	}
	if o.sip {
		// Kamailio is the outbound proxy, and so the SIP edge's trust domain: bob and the
		// conference server reach the gateway through it.
		env["SIP_OUTBOUND_PROXY"] = "sip:" + o.cscf
		env["USERS_REGISTRAR"] = "sip:" + sipDomain
		env["USERS_CONFERENCE_DOMAIN"] = confDomain
	} else {
		// Without a CSCF, a softphone on this machine calls the gateway directly.
		env["SIP_TRUSTED_PEERS"] = "127.0.0.1"
	}
	return env
}

// setDefaults sets every variable of env that is not set already.
func setDefaults(env map[string]string) {
	for k, v := range env {
		if _, ok := os.LookupEnv(k); !ok {
			os.Setenv(k, v)
		}
	}
}

// run runs the stack until soft (drain) or hard (stop now) ends.
func run(soft, hard context.Context, o options) error {
	setDefaults(devEnv(o))
	root, err := repoRoot()
	if err != nil {
		return err
	}
	if err := preflight(o); err != nil {
		return err
	}
	s, err := newStack(o)
	if err != nil {
		return err
	}
	defer s.stop()
	fmt.Fprintf(o.out, "devstack: logs in %s (kept after exit)\n", s.dir)
	if err := s.start(hard, root); err != nil {
		return err
	}
	err = s.run(soft, hard)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
