package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"dsmgw/imsdemo"
	"dsmgw/internal/gateway"
	"dsmgw/internal/proc"
	"dsmgw/internal/redisrun"
)

// stack is what one devstack run started. Every child dies with devstack (Pdeathsig)
// and is stopped by PID; the log folder stays.
type stack struct {
	o     options
	dir   string
	log   *slog.Logger // devstack's own lines
	gwLog *os.File     // the gateway's log, also on stderr
	files []*os.File   // closed by stop

	redis *redisrun.Server
	procs proc.Group // Kamailio and baresip, stopped in reverse order of start
	ctl   string     // Kamailio's control socket, for kamcmd -s
	bob   string     // bob's registration as Kamailio reports it
	conf  *imsdemo.Server
	app   *gateway.App
	cfg   gateway.Config // the gateway's, for the summary
}

// startTimeout bounds each step of the start (a peer listening, bob registering): each
// takes well under a second; 15 s covers a loaded machine.
const startTimeout = 15 * time.Second

// childOptions make a child die with devstack even when devstack is killed (kill -9),
// and write its output to a log file of the run.
func (s *stack) childOptions(name string) proc.Options {
	return proc.Options{Pdeathsig: syscall.SIGKILL, LogFile: filepath.Join(s.dir, name+".log")}
}

func newStack(o options) (*stack, error) {
	s := &stack{o: o, dir: o.dir}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "dsmgw-devstack-")
		if err != nil {
			return nil, err
		}
		s.dir = d
	} else if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(s.dir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	s.gwLog = f
	s.files = append(s.files, f)
	s.log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "devstack")
	return s, nil
}

// start starts every part and checks each; on error the caller's stop undoes it.
func (s *stack) start(ctx context.Context, root string) error {
	rs, err := redisrun.Start(ctx, redisrun.Options{Dir: s.dir, Proc: proc.Options{Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		return err
	}
	s.redis = rs
	setDefaults(map[string]string{"REDIS_ADDRS": rs.Addr})
	if s.o.sip {
		if err := s.startKamailio(root); err != nil {
			return err
		}
		if err := s.startConf(); err != nil {
			return err
		}
		if err := s.startBob(root); err != nil {
			return err
		}
	}
	cfg, err := gateway.LoadConfig()
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	glog := slog.New(slog.NewTextHandler(io.MultiWriter(os.Stderr, s.gwLog), &slog.HandlerOptions{Level: level}))
	if s.app, err = gateway.Build(ctx, cfg, glog); err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	s.cfg = cfg
	return nil
}

// readyPoll is how often run asks the gateway whether it is ready before saying so.
const readyPoll = 50 * time.Millisecond

// waitReady returns once the gateway is ready (its /readyz would answer 200: Redis, the
// feed readers and the bridge running), so that "ready" is printed only when it is
// true, or an error when it is not within startTimeout or run ends first.
func (s *stack) waitReady(ctx context.Context, runDone <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		err := s.app.Ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway not ready after %s: %w", startTimeout, err)
		case <-runDone:
			return fmt.Errorf("gateway stopped before it was ready: %w", err)
		case <-t.C:
		}
	}
}

// run runs the gateway (and the conference server) until soft or hard ends. The
// conference server stops after the gateway, which hangs up its calls to it first.
func (s *stack) run(soft, hard context.Context) error {
	confCtx, stopConf := context.WithCancel(hard)
	defer stopConf()
	confDone := make(chan error, 1)
	if s.conf != nil {
		go func() { confDone <- s.conf.Run(confCtx) }()
	} else {
		confDone <- nil
	}
	runDone := make(chan struct{})
	var err error
	go func() {
		defer close(runDone)
		err = s.app.Run(soft, hard)
	}()
	if rerr := s.waitReady(soft, runDone); rerr != nil {
		s.log.Error("not ready", "err", rerr)
	} else {
		s.summary(s.cfg)
	}
	<-runDone
	stopConf()
	if cerr := <-confDone; cerr != nil {
		s.log.Warn("conference server", "err", cerr)
	}
	return err
}

// stop stops every child by PID, the phone before the CSCF and both before Redis, and
// says where the logs are.
func (s *stack) stop() {
	if s.app != nil {
		s.app.Close() // a no-op after Run; releases the listeners if Run never ran
	}
	s.procs.Stop(func(c *proc.Child) { s.log.Info("stopped", "cmd", c.Name(), "pid", c.PID()) })
	if s.redis != nil {
		s.redis.Stop()
		s.log.Info("stopped", "cmd", "redis-server", "pid", s.redis.PID())
	}
	for _, f := range s.files {
		f.Close()
	}
	fmt.Fprintf(s.o.out, "devstack: stopped; logs kept in %s\n", s.dir)
}

// startKamailio runs Kamailio with deploy/kamailio.cfg on the -cscf address, its
// control socket in the run's folder (the config's default TCP port may be another
// Kamailio's), relaying the conference domain to the -conf address.
func (s *stack) startKamailio(root string) error {
	run := filepath.Join(s.dir, "kamailio")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return err
	}
	s.ctl = "unix:" + filepath.Join(run, "ctl.sock")
	bin, err := program("kamailio")
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "-DD", "-E", "-f", filepath.Join(root, "deploy", "kamailio.cfg"),
		"-Y", run, "-P", filepath.Join(run, "kamailio.pid"), "-m", "64", "-M", "8",
		"-l", "udp:"+s.o.cscf, "-l", "tcp:"+s.o.cscf,
		"-A", `CTL_ADDR="`+s.ctl+`"`, "-A", `CONF_SERVER="sip:`+s.o.conf+`"`)
	c, err := s.procs.Start("kamailio", cmd, s.childOptions("kamailio"))
	if err != nil {
		return err
	}
	if err := s.waitUntil(c, "Kamailio answering its control socket", func() bool {
		_, err := s.kamcmd("core.uptime")
		return err == nil
	}); err != nil {
		return err
	}
	s.log.Info("CSCF running", "cmd", "kamailio", "pid", c.PID(), "addr", s.o.cscf)
	return nil
}

// startConf starts the demo conference server in this process on the -conf address.
func (s *stack) startConf() error {
	f, err := os.Create(filepath.Join(s.dir, "imsdemo.log"))
	if err != nil {
		return err
	}
	s.files = append(s.files, f)
	host, _, err := net.SplitHostPort(s.o.conf)
	if err != nil {
		return fmt.Errorf("-conf %q: %w", s.o.conf, err)
	}
	cfg := imsdemo.DefaultConfig()
	cfg.ListenUDP, cfg.ListenTCP = s.o.conf, s.o.conf
	cfg.AdvertiseHost, cfg.RTPBindAddr, cfg.Domain = host, host, confDomain
	if s.conf, err = imsdemo.New(cfg, slog.New(slog.NewJSONHandler(f, nil))); err != nil {
		return fmt.Errorf("conference server: %w", err)
	}
	return nil
}

// startBob runs baresip registered as bob at the CSCF, answering every call with a
// 440 Hz tone, and waits until Kamailio has bob's registration.
func (s *stack) startBob(root string) error {
	conf := filepath.Join(s.dir, "baresip")
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	for _, f := range []string{"config", "accounts"} {
		b, err := os.ReadFile(filepath.Join(root, "deploy", "baresip", f))
		if err != nil {
			return err
		}
		txt := strings.NewReplacer("127.0.0.1:5060", s.o.cscf, "127.0.0.1:5080", s.o.phone).Replace(string(b))
		if err := os.WriteFile(filepath.Join(conf, f), []byte(txt), 0o644); err != nil {
			return err
		}
	}
	bin, err := program("baresip")
	if err != nil {
		return err
	}
	c, err := s.procs.Start("baresip", exec.Command(bin, "-f", conf), s.childOptions("baresip"))
	if err != nil {
		return err
	}
	err = s.waitUntil(c, "bob registered at the CSCF", func() bool {
		out, err := s.kamcmd("ul.lookup", "location", "bob")
		if err != nil || !strings.Contains(out, "Contact") {
			return false
		}
		s.bob = contactOf(out)
		return true
	})
	if err != nil {
		return fmt.Errorf("%w; baresip's log (%s) ends with:\n%s", err, filepath.Join(s.dir, "baresip.log"),
			tail(filepath.Join(s.dir, "baresip.log"), 1500))
	}
	s.log.Info("phone bob registered at the CSCF", "cmd", "baresip", "pid", c.PID(), "contact", s.bob)
	return nil
}

// kamcmd asks the CSCF through its control socket.
func (s *stack) kamcmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	bin, err := program("kamcmd")
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, bin, append([]string{"-s", s.ctl}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// contactOf returns the contact URI of a `kamcmd ul.lookup` answer.
func contactOf(out string) string {
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "Address:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return strings.TrimSpace(out)
}

// waitUntil polls cond until it holds, the child exits or startTimeout passes.
func (s *stack) waitUntil(c *proc.Child, what string, cond func() bool) error {
	deadline := time.Now().Add(startTimeout)
	for !cond() {
		select {
		case <-c.Done():
			return fmt.Errorf("%s: %s exited (%v); its log: %s", what, c.Name(), c.Wait(), filepath.Join(s.dir, c.Name()+".log"))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s", what, startTimeout)
		}
	}
	return nil
}

// tail returns the last n bytes of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
