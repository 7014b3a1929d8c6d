package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
)

// processes are the children devstack started besides Redis; stop stops them by PID,
// the last started first (the phone before the proxy it registered with).
type processes struct {
	group proc.Group
	dir   string // holds each child's <name>.log
}

// start runs cmd with its output going to <name>.log in the run's directory.
func (p *processes) start(name string, cmd *exec.Cmd) error {
	_, err := p.group.Start(name, cmd, proc.Options{LogFile: filepath.Join(p.dir, name+".log")})
	return err
}

func (p *processes) stop(log *slog.Logger) {
	p.group.Stop(func(c *proc.Child) { log.Info("stopped", "cmd", c.Name(), "pid", c.PID()) })
}

// startRedis runs a private redis-server with keyspace notifications for hashes and
// generic commands (the gateway's default needs), its files in the run's directory.
func startRedis(ctx context.Context, dir string) (*redisrun.Server, error) {
	return redisrun.Start(ctx, redisrun.Options{NotifyKeyspaceEvents: "Khg", Dir: dir})
}

// startKamailio runs Kamailio with deploy/kamailio.cfg on 127.0.0.1:5060 and returns its
// address.
func (p *processes) startKamailio(root string) (string, error) {
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		return "", errors.New("kamailio not installed (apt-get install kamailio)")
	}
	addr := "127.0.0.1:5060"
	run := filepath.Join(p.dir, "kamailio")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "-DD", "-E", "-f", filepath.Join(root, "deploy", "kamailio.cfg"),
		"-Y", run, "-m", "64", "-M", "8", "-l", "udp:"+addr, "-l", "tcp:"+addr)
	if err := p.start("kamailio", cmd); err != nil {
		return "", err
	}
	return addr, proc.WaitTCP(addr, 10*time.Second)
}

// startBaresip runs a baresip phone registered as bob at the CSCF, answering every call
// automatically with a 440 Hz tone.
func (p *processes) startBaresip(root, cscf string) error {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		return errors.New("baresip not installed (apt-get install baresip)")
	}
	conf := filepath.Join(p.dir, "baresip")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"config", "accounts"} {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "baresip", f))
		if err != nil {
			return err
		}
		s := strings.ReplaceAll(string(b), "127.0.0.1:5060", cscf)
		if err := os.WriteFile(filepath.Join(conf, f), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return p.start("baresip", exec.Command(bin, "-f", conf))
}
