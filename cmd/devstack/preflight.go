package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"dsmgw/internal/proc"
)

// port is one port devstack's processes will bind.
type port struct {
	proto, addr string
	what        string // who binds it, in the user's words
	fix         string // how to move it, when the holder is not to be stopped
}

// ports lists every port the stack binds (the media ports excepted: the media gateway and
// the conference server pick free ones from their ranges).
func ports(o options) []port {
	gw := func(v, what string) []port {
		addr := os.Getenv(v)
		if addr == "" {
			return nil // a listener the user turned off
		}
		var out []port
		protos := []string{"tcp"}
		if v == "SIP_LISTEN_UDP" {
			protos = []string{"udp"}
		}
		for _, p := range protos {
			out = append(out, port{proto: p, addr: addr, what: what, fix: "set " + v + " to another address"})
		}
		return out
	}
	var ps []port
	ps = append(ps, gw("HTTP_ADDR", "the gateway's page and APIs")...)
	ps = append(ps, gw("SIP_LISTEN_UDP", "the gateway's SIP")...)
	ps = append(ps, gw("SIP_LISTEN_TCP", "the gateway's SIP")...)
	if o.sip {
		for _, p := range []struct{ addr, what, flag string }{
			{o.cscf, "Kamailio, the CSCF", "-cscf"},
			{o.phone, "bob (baresip)", "-phone"},
			{o.conf, "the conference server", "-conf"},
		} {
			for _, proto := range []string{"udp", "tcp"} {
				ps = append(ps, port{proto: proto, addr: p.addr, what: p.what, fix: "pass " + p.flag + " with another address"})
			}
		}
	}
	return ps
}

// preflight checks, before anything starts, that every program the stack runs is
// installed and every port it binds is free; the error names what to do.
func preflight(o options) error {
	if o.sip {
		var missing []string
		for _, prog := range []string{"kamailio", "kamcmd", "baresip"} {
			if _, err := program(prog); err != nil {
				missing = append(missing, prog)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s not installed: apt-get install kamailio baresip (or run with -sip=false for the gateway alone, with no phone to call)",
				strings.Join(missing, ", "))
		}
	}
	if _, err := program("redis-server"); err != nil {
		return errors.New("redis-server not installed: apt-get install redis-server")
	}
	var taken []string
	for _, p := range ports(o) {
		if err := bindable(p.proto, p.addr); err != nil {
			taken = append(taken, describeTaken(p, err))
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("ports taken, nothing started:\n  %s", strings.Join(taken, "\n  "))
	}
	return nil
}

// program finds an installed program: on PATH, else in the sbin folders where Debian
// puts Kamailio's, which a user's PATH often lacks.
func program(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		if q, e := exec.LookPath(filepath.Join(dir, name)); e == nil {
			return q, nil
		}
	}
	return "", err
}

// bindable binds addr for proto and lets it go at once.
func bindable(proto, addr string) error {
	if proto == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return l.Close()
}

// describeTaken says which port is taken, by whom, and how to fix it.
func describeTaken(p port, err error) string {
	line := fmt.Sprintf("%s/%s (%s): %v", p.addr, p.proto, p.what, unwrapOp(err))
	var holders []string
	kamailio := false
	if _, ps, e := net.SplitHostPort(p.addr); e == nil {
		var n int
		if _, e := fmt.Sscan(ps, &n); e == nil {
			hs, _ := proc.PortHolders(p.proto, n)
			for _, h := range hs {
				holders = append(holders, h.String())
				kamailio = kamailio || h.Name == "kamailio"
			}
		}
	}
	if len(holders) > 0 {
		line += "; held by " + strings.Join(holders, ", ")
	}
	switch {
	case kamailio:
		line += "; Debian's kamailio package starts a system service on 5060 when installed: " +
			"`systemctl disable --now kamailio` stops it for good, or " + p.fix
	default:
		line += "; stop what holds it, or " + p.fix
	}
	return line
}

// unwrapOp drops the "listen tcp 127.0.0.1:5060:" prefix the line already says.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
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
			return "", errors.New("run devstack from inside the dsmgw checkout (deploy/kamailio.cfg not found above the working folder)")
		}
		d = p
	}
}
