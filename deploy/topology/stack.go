package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"golang.org/x/sync/errgroup"
)

// EnvKeep names the environment variable that, set to a folder, keeps each run's service
// roots and output there (in a folder named after the run's id) instead of a temporary
// folder deleted with the test.
const EnvKeep = "DSMGW_TOPOLOGY_KEEP"

// Options tune Up.
type Options struct {
	// ComposeFile is the compose file to run (default: docker-compose.yml at the root of
	// the repository holding the working folder).
	ComposeFile string
	// Overrides are compose files read after ComposeFile, in order, as `docker compose
	// -f docker-compose.yml -f <override>` reads them (relative paths in them are
	// resolved against ComposeFile's folder, as Compose does).
	Overrides []string
	// Env holds more variables for the compose files' interpolation.
	Env map[string]string
	// Profiles are the active profiles: a service of another profile is planned (its
	// namespace, address and name exist) but only started by Stack.Start, as
	// `docker compose up` leaves it until named.
	Profiles []string
	// Timeout bounds the start of the whole stack, healthchecks included (default 90 s:
	// a cold go build of the gateway and Kamailio's start on a loaded 2-core machine).
	Timeout time.Duration
}

// Port is one published port of a service.
type Port struct {
	Protocol  string // "tcp" or "udp"
	Published int    // on the host
	Target    int    // in the service
}

// Stack is a compose project running in network namespaces. Up starts it and the test's
// cleanup stops it and deletes what it created.
type Stack struct {
	// Project is the compose file as Compose reads it, with the run's variables.
	Project *types.Project
	// Network is the run's bridge and subnet.
	Network *Network
	// PublicHost is the loopback address published TCP ports listen on (also given to
	// the compose file as ${DSMGW_PUBLIC_HOST}).
	PublicHost string

	services map[string]*Service
	order    []string        // dependencies before dependents
	active   map[string]bool // services Up starts (the others wait for Start)

	mu    sync.Mutex // guards ports and fwd: services start concurrently
	ports map[string][]Port
	fwd   []*forwarder
}

// Up runs the compose file: a namespace per service, each started once the conditions of
// its depends_on hold, its TCP ports published, and every healthcheck passing before Up
// returns (as `docker compose up --wait`). A failure stops the test with the output of
// the services.
func Up(t testing.TB, o Options) *Stack {
	t.Helper()
	if o.ComposeFile == "" {
		f, err := findComposeFile()
		if err != nil {
			t.Fatalf("topology: %v", err)
		}
		o.ComposeFile = f
	}
	if o.Timeout <= 0 {
		o.Timeout = 90 * time.Second
	}
	n := newNetwork(t)
	a, b := n.Subnet.Addr().As4()[1], n.Subnet.Addr().As4()[2]
	s := &Stack{Network: n, PublicHost: fmt.Sprintf("127.%d.%d.1", a, b),
		services: map[string]*Service{}, ports: map[string][]Port{}}
	env := map[string]string{VarNet: fmt.Sprintf("10.%d.%d", a, b), VarPublicHost: s.PublicHost}
	if raceEnabled {
		// Gateways built with -race run several times slower: on a 2-core machine running
		// the whole stack (and a compiler beside it), their 1 s call leases saw renewals
		// late by more than the 750 ms a lease allows, and calls moved off live
		// instances. 3 s leaves the tests' calls where they are; cmd/survivalbench
		// measures the default lease without -race, false takeovers included.
		env[VarCallLease] = "3s"
	}
	maps.Copy(env, o.Env)
	p, err := loadProject(context.Background(), o.ComposeFile, env, o.Overrides...)
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	s.Project = p
	plans, err := planServices(p, n.Subnet)
	if err != nil {
		t.Fatalf("topology: %s: %v", o.ComposeFile, err)
	}
	if s.order, err = startOrder(p); err != nil {
		t.Fatalf("topology: %v", err)
	}
	s.active = activeServices(p, o.Profiles)
	t0 := time.Now()
	dir := t.TempDir()
	if keep := os.Getenv(EnvKeep); keep != "" {
		// A folder that outlives the test, for a person to read every output in full.
		dir = filepath.Join(keep, n.ID)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("topology: %v", err)
		}
		t.Logf("topology: services' roots and output kept in %s", dir)
	}
	gb := &goBuilder{repo: filepath.Dir(o.ComposeFile), dir: filepath.Join(dir, "bin"), built: map[string]string{}}
	hosts := hostsFile(plans)
	for _, name := range s.order {
		pl := plans[name]
		r, err := makeRoot(filepath.Join(dir, name), pl, gb.build)
		if err != nil {
			t.Fatalf("topology: service %s: %v", name, err)
		}
		ns, link := n.Namespace(t, name, pl.ifname, pl.addr, hosts)
		s.services[name] = &Service{Name: name, Addr: pl.addr, NS: ns, Link: link, plan: pl, root: r,
			Log: filepath.Join(dir, name+".log")}
	}
	t.Logf("topology: %s: images and namespaces ready in %s", n.Subnet, time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() { s.down(t) })
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	t0 = time.Now()
	if err := s.startAll(ctx, func(f string, a ...any) {
		t.Logf("topology: %s: "+f, append([]any{time.Since(t0).Round(time.Millisecond)}, a...)...)
	}); err != nil {
		t.Fatalf("topology: %v", err)
	}
	return s
}

// startAll starts every service once its dependencies' conditions hold, concurrently
// where the dependencies allow, as Compose does.
func (s *Stack) startAll(ctx context.Context, logf func(string, ...any)) error {
	started, healthy := map[string]chan struct{}{}, map[string]chan struct{}{}
	for name := range s.services {
		started[name], healthy[name] = make(chan struct{}), make(chan struct{})
	}
	wait := func(ch <-chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	for _, name := range s.order {
		sv := s.services[name]
		if !s.active[name] {
			continue
		}
		g.Go(func() error {
			for dep, d := range sv.plan.svc.DependsOn {
				if !s.active[dep] {
					return fmt.Errorf("service %s depends on %s, whose profile is not active", name, dep)
				}
				var err error
				switch d.Condition {
				case types.ServiceConditionHealthy:
					if s.services[dep].plan.health() == nil {
						return fmt.Errorf("service %s %s (%s)", name, errNoHealthcheck, dep)
					}
					err = wait(healthy[dep])
				case types.ServiceConditionCompletedSuccessfully:
					if err = wait(started[dep]); err == nil {
						if err = wait(s.services[dep].child.Done()); err == nil && s.services[dep].child.Wait() != nil {
							err = fmt.Errorf("%s did not complete successfully: %v", dep, s.services[dep].child.Wait())
						}
					}
				default:
					err = wait(started[dep])
				}
				if err != nil {
					return fmt.Errorf("service %s waiting for %s (%s): %w", name, dep, d.Condition, err)
				}
			}
			if err := sv.start(); err != nil {
				return err
			}
			close(started[name])
			logf("%s started (pid %d, %s)", name, sv.PID(), sv.Addr)
			if err := s.publish(sv); err != nil {
				return err
			}
			if sv.plan.health() != nil {
				if err := sv.waitHealthy(ctx); err != nil {
					return err
				}
			}
			close(healthy[name])
			logf("%s healthy", name)
			return nil
		})
	}
	return g.Wait()
}

// publish starts a forwarder for each published TCP port of a service and records every
// published port.
func (s *Stack) publish(sv *Service) error {
	for _, p := range sv.plan.svc.Ports {
		pub, err := strconv.Atoi(p.Published)
		if err != nil {
			return fmt.Errorf("service %s: published port %q: %w", sv.Name, p.Published, err)
		}
		proto := cmpOr(p.Protocol, "tcp")
		s.mu.Lock()
		s.ports[sv.Name] = append(s.ports[sv.Name], Port{Protocol: proto, Published: pub, Target: int(p.Target)})
		s.mu.Unlock()
		if proto != "tcp" {
			continue // reached directly at the service's address (mapping.go)
		}
		f, err := publishTCP(net.JoinHostPort(s.PublicHost, p.Published),
			net.JoinHostPort(sv.Addr.String(), strconv.Itoa(int(p.Target))))
		if err != nil {
			return fmt.Errorf("service %s: publish %s: %w", sv.Name, p.Published, err)
		}
		s.mu.Lock()
		s.fwd = append(s.fwd, f)
		s.mu.Unlock()
	}
	return nil
}

// down stops the published ports, then the services, dependents first (as `docker
// compose down`), and shows the services' output when the test failed.
func (s *Stack) down(t testing.TB) {
	s.mu.Lock()
	fwd := s.fwd
	s.mu.Unlock()
	for _, f := range fwd {
		if err := f.close(); err != nil {
			t.Errorf("topology: %v", err)
		}
	}
	// Dependents first, as `docker compose down`; independent services at once.
	done := map[string]chan struct{}{}
	for name := range s.services {
		done[name] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for name, sv := range s.services {
		wg.Go(func() {
			defer close(done[name])
			for other, o := range s.services {
				if _, ok := o.plan.svc.DependsOn[name]; ok {
					<-done[other]
				}
			}
			if sv.child != nil {
				t0 := time.Now()
				sv.stop()
				t.Logf("topology: %s stopped in %s", name, time.Since(t0).Round(time.Millisecond))
			}
		})
	}
	wg.Wait()
	for _, name := range s.order {
		// Programs built with -race report a race on their output and keep running.
		if out := s.services[name].Output(); strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("topology: %s had a data race:\n%s", name, out[strings.Index(out, "WARNING: DATA RACE"):])
		}
	}
	if t.Failed() {
		for _, name := range s.order {
			t.Logf("--- %s (%s) output ---\n%s", name, s.services[name].Addr, s.services[name].tail(6000))
		}
	}
}

// Service returns the named service; it fails the test when there is none.
func (s *Stack) Service(t testing.TB, name string) *Service {
	t.Helper()
	sv, ok := s.services[name]
	if !ok {
		t.Fatalf("topology: no service %q (have %v)", name, slices.Sorted(maps.Keys(s.services)))
	}
	return sv
}

// Restart stops a service as `docker compose restart` does (its stop signal, SIGKILL
// after the grace period) and starts it again in the same namespace with the same root
// (volumes keep their content) and published ports, and waits until it is healthy.
func (s *Stack) Restart(t testing.TB, name string) {
	t.Helper()
	sv := s.Service(t, name)
	sv.stop()
	if err := sv.start(); err != nil {
		t.Fatalf("topology: restart: %v", err)
	}
	if sv.plan.health() != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sv.waitHealthy(ctx); err != nil {
			t.Fatalf("topology: restart: %v", err)
		}
	}
}

// Ports returns the ports a service publishes.
func (s *Stack) Ports(name string) []Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ports[name])
}

// Published returns host:port where a service's TCP port target is published.
func (s *Stack) Published(t testing.TB, name string, target int) string {
	t.Helper()
	for _, p := range s.Ports(name) {
		if p.Protocol == "tcp" && p.Target == target {
			return net.JoinHostPort(s.PublicHost, strconv.Itoa(p.Published))
		}
	}
	t.Fatalf("topology: service %s publishes no TCP port %d", name, target)
	return ""
}

// startOrder sorts the services so that each comes after what it depends on.
func startOrder(p *types.Project) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(name string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("depends_on cycle through %s", name)
		case 2:
			return nil
		}
		state[name] = 1
		svc, ok := p.Services[name]
		if !ok {
			return fmt.Errorf("depends_on names %s, which is no service", name)
		}
		for _, dep := range slices.Sorted(maps.Keys(svc.DependsOn)) {
			if err := visit(dep); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if err := visit(name); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// findComposeFile walks up from the working folder to the repository's compose file.
func findComposeFile() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		f := filepath.Join(dir, "docker-compose.yml")
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no docker-compose.yml in the working folder or above")
		}
		dir = up
	}
}
