package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"dsmgw/internal/proc"
)

// processes are the children devstack started; stopAll stops them by PID.
type processes struct {
	children []*proc.Child
	bins     []string // each child's binary, for the log
}

// start runs cmd with its output going to <name>.log in dir.
func (p *processes) start(dir, name string, cmd *exec.Cmd) error {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	c, err := proc.Start(name, cmd, proc.Options{})
	if err != nil {
		return err
	}
	p.children = append(p.children, c)
	p.bins = append(p.bins, filepath.Base(cmd.Path))
	return nil
}

// stopAll stops the children in the reverse order of their start (the phone before
// the proxy it registered with, the proxy before Redis).
func (p *processes) stopAll(log *slog.Logger) {
	for i := len(p.children) - 1; i >= 0; i-- {
		c := p.children[i]
		c.Stop()
		log.Info("stopped", "cmd", p.bins[i], "pid", c.PID())
	}
}

func (p *processes) startRedis(dir string) (int, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return 0, errors.New("redis-server not installed (apt-get install redis-server)")
	}
	port, err := proc.FreePort()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--notify-keyspace-events", "Khg")
	if err := p.start(dir, "redis", cmd); err != nil {
		return 0, err
	}
	return port, proc.WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
}

// startKamailio runs Kamailio with deploy/kamailio.cfg on 127.0.0.1:5060 and returns its
// address.
func (p *processes) startKamailio(dir, root string) (string, error) {
	bin, err := exec.LookPath("kamailio")
	if err != nil {
		return "", errors.New("kamailio not installed (apt-get install kamailio)")
	}
	addr := "127.0.0.1:5060"
	run := filepath.Join(dir, "kamailio")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command(bin, "-DD", "-E", "-f", filepath.Join(root, "deploy", "kamailio.cfg"),
		"-Y", run, "-m", "64", "-M", "8", "-l", "udp:"+addr, "-l", "tcp:"+addr)
	if err := p.start(dir, "kamailio", cmd); err != nil {
		return "", err
	}
	return addr, proc.WaitTCP(addr, 10*time.Second)
}

// startBaresip runs a baresip phone registered as bob at the CSCF, answering every call
// automatically with a 440 Hz tone.
func (p *processes) startBaresip(dir, root, cscf string) error {
	bin, err := exec.LookPath("baresip")
	if err != nil {
		return errors.New("baresip not installed (apt-get install baresip)")
	}
	conf := filepath.Join(dir, "baresip")
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
	return p.start(dir, "baresip", exec.Command(bin, "-f", conf))
}
