package topology

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"dsmgw/internal/proc"
)

// healthPoll is how often a healthcheck runs until it passes: Docker runs it every
// interval (30 s by default), which would make a test wait for nothing; the command and
// its verdict are the compose file's.
const healthPoll = 200 * time.Millisecond

// healthTimeout bounds one run of a healthcheck without a timeout of its own (Docker's
// default is 30 s; a check on this machine answers in milliseconds or not at all).
const healthTimeout = 5 * time.Second

// Service is one running service of a Stack.
type Service struct {
	// Name is the service's name in the compose file.
	Name string
	// NS is its network namespace (`ip -n <NS> route add blackhole <addr>` cuts it off
	// from one peer).
	NS string
	// Link is its veth end on the bridge (`ip link set <Link> down` cuts it off from all).
	Link string
	// Addr is its address on the compose network.
	Addr netip.Addr
	// Log is the file its output goes to.
	Log string

	plan  *plan
	root  *root
	child *proc.Child
}

// command returns the program and arguments the service runs: the image's entrypoint
// and command, replaced by the service's entrypoint: and command: as Docker does (a new
// entrypoint drops the image's command).
func (pl *plan) command() []string {
	ep, cmd := pl.image.entrypoint, pl.image.cmd
	if pl.docker != nil {
		ep, cmd = pl.docker.entrypoint, pl.docker.cmd
	}
	if pl.svc.Entrypoint != nil {
		ep, cmd = pl.svc.Entrypoint, nil
	}
	if pl.svc.Command != nil {
		cmd = pl.svc.Command
	}
	argv := append(slices.Clone([]string(ep)), cmd...)
	if len(argv) > 0 {
		argv = append(argv, pl.image.appendArgs[filepath.Base(argv[0])]...)
	}
	return argv
}

// health returns the healthcheck's command, or nil when the service has none.
func (pl *plan) health() []string {
	hc := pl.svc.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) == 0 {
		return nil
	}
	switch hc.Test[0] {
	case "CMD":
		return hc.Test[1:]
	case "CMD-SHELL":
		return []string{"/bin/sh", "-c", strings.Join(hc.Test[1:], " ")}
	}
	return nil // NONE
}

func (pl *plan) argvs() [][]string { return [][]string{pl.command(), pl.health()} }

// environ is the service's environment: this machine's PATH, HOME and HOSTNAME as a
// container has them, the image's ENV, then the service's environment:.
func (s *Service) environ() []string {
	env := map[string]string{
		"PATH":     os.Getenv("PATH"),
		"HOME":     s.root.imagePath("/root"),
		"HOSTNAME": cmpOr(s.plan.svc.Hostname, s.Name),
	}
	maps.Copy(env, s.plan.image.env)
	if s.plan.docker != nil {
		maps.Copy(env, s.plan.docker.env)
	}
	for k, v := range s.plan.svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// workdir returns the service's working folder inside its root, created if needed.
func (s *Service) workdir() (string, error) {
	wd := s.plan.svc.WorkingDir
	if wd == "" && s.plan.docker != nil {
		wd = s.plan.docker.workdir
	}
	if wd == "" {
		wd = s.plan.image.workdir
	}
	d := s.root.resolve(cmpOr(wd, "/"))
	return d, os.MkdirAll(d, 0o755)
}

// start runs the service's command in its namespace, its output to s.Log.
func (s *Service) start() error {
	argv := s.root.rewriteAll(s.plan.command())
	if len(argv) == 0 {
		return fmt.Errorf("service %s: no command (image %s has none and the service gives none)", s.Name, s.plan.imageKey)
	}
	if err := s.lookPath(argv[0]); err != nil {
		return err
	}
	wd, err := s.workdir()
	if err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.NS}, argv...)...)
	cmd.Dir, cmd.Env = wd, s.environ()
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGKILL on our death: a test that times out runs no cleanup, and a server left
	// running would hold its namespace.
	c, err := proc.Start(s.Name, cmd, proc.Options{Pdeathsig: syscall.SIGKILL})
	if err != nil {
		return fmt.Errorf("service %s: %w", s.Name, err)
	}
	s.child = c
	return nil
}

// lookPath fails with the Debian packages to install when a program is missing.
func (s *Service) lookPath(prog string) error {
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("service %s: %s not found (image %s: install %s; .ci/run does): %w",
			s.Name, prog, s.plan.imageKey, strings.Join(s.plan.image.packages, " "), err)
	}
	return nil
}

// checkHealth runs the healthcheck once in the service's namespace.
func (s *Service) checkHealth(ctx context.Context) error {
	argv := s.root.rewriteAll(s.plan.health())
	d := healthTimeout
	if t := s.plan.svc.HealthCheck.Timeout; t != nil && time.Duration(*t) > 0 {
		d = time.Duration(*t)
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.NS}, argv...)...)
	cmd.Dir, cmd.Env = s.root.dir, s.environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("healthcheck %q: %w: %s", strings.Join(s.plan.health(), " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}

// waitHealthy runs the healthcheck until it passes, the service exits or ctx ends.
func (s *Service) waitHealthy(ctx context.Context) error {
	if err := s.lookPath(s.root.rewrite(s.plan.health()[0])); err != nil {
		return err
	}
	var last error
	for {
		if last = s.checkHealth(ctx); last == nil {
			return nil
		}
		select {
		case <-s.child.Done():
			return fmt.Errorf("service %s exited before it was healthy: %v", s.Name, s.child.Wait())
		case <-ctx.Done():
			return fmt.Errorf("service %s not healthy: %w", s.Name, last)
		case <-time.After(healthPoll):
		}
	}
}

// stopGrace is how long a service may take to exit after its stop signal when the
// compose file gives no stop_grace_period (Docker waits 10 s; the services here exit in
// milliseconds, a gateway after a drain of its calls).
const stopGrace = 3 * time.Second

// stopSignal returns the signal a compose stop_signal names (SIGTERM when empty or not
// one a server would take as a stop request).
func stopSignal(name string) syscall.Signal {
	switch strings.TrimPrefix(strings.ToUpper(name), "SIG") {
	case "INT":
		return syscall.SIGINT
	case "QUIT":
		return syscall.SIGQUIT
	case "HUP":
		return syscall.SIGHUP
	case "USR1":
		return syscall.SIGUSR1
	case "USR2":
		return syscall.SIGUSR2
	}
	return syscall.SIGTERM
}

// stop stops the service as `docker stop` does: the stop signal to its main process
// only, then, once that exited or the grace period ended, SIGKILL to whatever is left
// (its process group here, the container's PID namespace there). The sip service's shell
// execs baresip, which unregisters from the Kamailio beside it before it exits; a signal
// to the whole group would stop Kamailio first and leave baresip waiting for an answer.
func (s *Service) stop() {
	sig := stopSignal(s.plan.svc.StopSignal)
	grace := stopGrace
	if g := s.plan.svc.StopGracePeriod; g != nil {
		grace = time.Duration(*g)
	}
	pid := s.child.PID()
	select {
	case <-s.child.Done():
	default:
		_ = syscall.Kill(pid, sig)
		select {
		case <-s.child.Done():
		case <-time.After(grace):
		}
	}
	// The group outlives its leader while members remain; an error means none do.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-s.child.Done()
}

// PID returns the service's process ID (also its process group's).
func (s *Service) PID() int { return s.child.PID() }

// Signal sends sig to the service's process group (SIGSTOP and SIGCONT freeze and thaw
// it, SIGKILL kills it as a crash would).
func (s *Service) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-s.child.PID(), sig); err != nil {
		return fmt.Errorf("signal %s to %s (pid %d): %w", sig, s.Name, s.child.PID(), err)
	}
	return nil
}

// Output returns what the service printed so far.
func (s *Service) Output() string {
	b, err := os.ReadFile(s.Log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// tail returns the last n bytes of the service's output.
func (s *Service) tail(n int) string {
	b := s.Output()
	if len(b) > n {
		b = "…" + b[len(b)-n:]
	}
	return b
}
