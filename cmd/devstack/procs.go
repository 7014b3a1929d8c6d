package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// processes are the children devstack started; stopAll stops them by PID.
type processes struct {
	cmds []*exec.Cmd
}

func (p *processes) start(dir, name string, cmd *exec.Cmd) error {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	p.cmds = append(p.cmds, cmd)
	return nil
}

func (p *processes) stopAll(log *slog.Logger) {
	for i := len(p.cmds) - 1; i >= 0; i-- {
		c := p.cmds[i]
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-done
		}
		log.Info("stopped", "cmd", filepath.Base(c.Path), "pid", c.Process.Pid)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *processes) startRedis(dir string) (int, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return 0, errors.New("redis-server not installed (apt-get install redis-server)")
	}
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--notify-keyspace-events", "Khg")
	if err := p.start(dir, "redis", cmd); err != nil {
		return 0, err
	}
	return port, waitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
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
	return addr, waitTCP(addr, 10*time.Second)
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
