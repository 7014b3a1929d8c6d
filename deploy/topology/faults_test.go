package topology

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// faultsFile is the fault tests' override of docker-compose.yml (its comment says what it
// changes and why).
const faultsFile = "testdata/faults.yml"

// TestFaults runs docker-compose.yml with testdata/faults.yml (Redis without keyspace
// settings of its own, a third gateway to scale out to, the load balancer's config in a
// file the test edits) and puts it through the faults of a deployment, one after the
// other on one stack: starting it is most of the cost, and each fault leaves the stack
// whole for the next. Each subtest logs the figures it measures.
func TestFaults(t *testing.T) {
	t0 := time.Now()
	overrides, err := filepath.Abs(faultsFile)
	if err != nil {
		t.Fatal(err)
	}
	lbConf := filepath.Join(t.TempDir(), "nginx.conf")
	writeLBConf(t, lbConf, "gw1", "gw2")
	s := Up(t, Options{Overrides: []string{overrides}, Env: map[string]string{"DSMGW_LB_CONF": lbConf}})
	t.Logf("stack up in %s", time.Since(t0).Round(time.Millisecond))
	f := &faults{s: s, lb: "http://" + s.Published(t, "lb", 8080), lbConf: lbConf}

	steps := []struct {
		name string
		run  func(*testing.T)
	}{
		{"gateways set keyspace notifications on a Redis without them", f.keyspaceSet},
		{"scale out: gw3 joins", f.scaleOut},
		{"Redis restarts under load", f.redisRestart},
		{"SIGKILL a gateway during calls and DSM load", f.kill},
		{"partition: a gateway cut off from Redis only", f.partitionRedis},
		{"partition: a gateway's link down", f.partitionLink},
		{"rolling restart: SIGTERM each gateway in turn under calls and DSM load", f.rollingRestart},
	}
	for _, st := range steps {
		t1 := time.Now()
		ok := t.Run(st.name, st.run)
		t.Logf("%s: %s", st.name, time.Since(t1).Round(time.Millisecond))
		if !ok {
			break // the stack may be left broken: later faults would only fail for it
		}
	}
	t.Logf("TestFaults took %s", time.Since(t0).Round(time.Millisecond))
}

// faults is the stack the fault subtests share.
type faults struct {
	s      *Stack
	lb     string
	lbConf string
}

// writeLBConf writes deploy/nginx.conf with the given gateways in its upstream, as a user
// scaling out edits it.
func writeLBConf(t testing.TB, path string, gateways ...string) {
	t.Helper()
	file, err := findComposeFile()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	// The upstream's lines, as the file has them: "server gw1:8080 <parameters>;".
	servers := regexp.MustCompile(`(?m)^(\s*)server gw1:8080([^;\n]*);\n\s*server gw2:8080[^;\n]*;\n`)
	m := servers.FindStringSubmatch(conf)
	if m == nil {
		t.Fatalf("deploy/nginx.conf's upstream is no longer gw1 and gw2; the test must learn its new form")
	}
	var up strings.Builder
	for _, gw := range gateways {
		up.WriteString(m[1] + "server " + gw + ":8080" + m[2] + ";\n")
	}
	conf = strings.Replace(conf, m[0], up.String(), 1)
	// nginx's warnings (an upstream server disabled) in its output, for a failing test.
	conf = "error_log stderr info;\n" + conf
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reloadLB has nginx read its config again, as `docker compose exec lb nginx -s reload`:
// new connections go to the new upstream, open ones stay where they are.
func (f *faults) reloadLB(t testing.TB) {
	t.Helper()
	f.s.Exec(t, "lb", "nginx", "-c", "/etc/nginx/nginx.conf", "-g", "pid /run/nginx.pid;", "-s", "reload")
}

// keyspaceSet checks that notify-keyspace-events holds what the feed needs although the
// redis service's command (testdata/faults.yml) sets none: the gateways set it.
func (f *faults) keyspaceSet(t *testing.T) {
	rdb := redisClient(t, f.s)
	waitFor(t, "the gateways' keyspace setting on Redis", 15*time.Second, func() bool {
		cfg, err := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
		return err == nil && hasAll(cfg["notify-keyspace-events"], "Khg")
	})
	for _, gw := range []string{"gw1", "gw2"} {
		if body := readyz(t, f.s, gw); !strings.Contains(body, " ok, set ") {
			t.Errorf("%s /readyz: %q, want the keyspace setting ok", gw, body)
		}
	}
}

// hasAll reports whether flags holds every class in want.
func hasAll(flags, want string) bool {
	for _, r := range want {
		if !strings.ContainsRune(flags, r) && !(strings.ContainsRune(flags, 'A') && r != 'K' && r != 'E') {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds; d is a failure deadline, not a timing assertion.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	t0 := time.Now()
	for !cond() {
		if time.Since(t0) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(t0)
}

// readyz returns a gateway's /readyz body, asked in its namespace as the healthcheck does.
func readyz(t *testing.T, s *Stack, gw string) string {
	t.Helper()
	return s.Exec(t, gw, "curl", "-sS", "http://127.0.0.1:8080/readyz")
}
