package topology

import (
	"bytes"
	"context"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// activeServices returns the services `docker compose up` starts with the given active
// profiles: those without a profile, and those with one of them.
func activeServices(p *types.Project, profiles []string) map[string]bool {
	out := map[string]bool{}
	for name, svc := range p.Services {
		if len(svc.Profiles) == 0 || slices.ContainsFunc(svc.Profiles, func(pr string) bool { return slices.Contains(profiles, pr) }) {
			out[name] = true
		}
	}
	return out
}

// startTimeout bounds Start and Restart, healthcheck included: the images are built and
// the dependencies run already, so a service is healthy within seconds.
const startTimeout = time.Minute

// Start starts a service Up did not start (one of a profile that was not active), as
// `docker compose up -d <name>` does once its dependencies run: in its planned namespace,
// its ports published, and returns once it is healthy.
func (s *Stack) Start(t testing.TB, name string) {
	t.Helper()
	sv := s.Service(t, name)
	if sv.child != nil {
		t.Fatalf("topology: %s already started", name)
	}
	for dep := range sv.plan.svc.DependsOn {
		if d := s.services[dep]; d.child == nil {
			t.Fatalf("topology: %s depends on %s, which is not running", name, dep)
		}
	}
	if err := sv.start(); err != nil {
		t.Fatalf("topology: start: %v", err)
	}
	if err := s.publish(sv); err != nil {
		t.Fatalf("topology: start: %v", err)
	}
	s.active[name] = true
	if sv.plan.health() != nil {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := sv.waitHealthy(ctx); err != nil {
			t.Fatalf("topology: start: %v", err)
		}
	}
}

// Stop stops a service as `docker compose stop` does (its stop signal, SIGKILL after its
// stop_grace_period) and returns how long it took to exit; Restart runs it again.
func (s *Stack) Stop(t testing.TB, name string) time.Duration {
	t.Helper()
	sv := s.Service(t, name)
	t0 := time.Now()
	sv.stop()
	return time.Since(t0)
}

// Exec runs a command in a running service's namespace with its environment and image
// paths, as `docker compose exec <name> <argv>` does, and returns what it printed.
func (s *Stack) Exec(t testing.TB, name string, argv ...string) string {
	t.Helper()
	sv := s.Service(t, name)
	argv = sv.root.rewriteAll(argv)
	if err := sv.lookPath(argv[0]); err != nil {
		t.Fatalf("topology: exec: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", sv.NS}, argv...)...)
	cmd.Dir, cmd.Env = sv.root.dir, sv.environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("topology: exec in %s: %s: %v\n%s", name, strings.Join(argv, " "), err, out.String())
	}
	return out.String()
}

// Running returns the services started so far, sorted.
func (s *Stack) Running() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(s.services)) {
		if s.services[name].child != nil {
			out = append(out, name)
		}
	}
	return out
}
