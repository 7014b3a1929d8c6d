package topology

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestTopology runs docker-compose.yml (Redis, Kamailio with baresip as bob, two gateways,
// nginx in front) and uses it as a user would, through the load balancer's published
// port; bob also records what he receives (testdata/bob-hears.yml). One stack serves the
// subtests, in order: starting it is most of the cost, and the placement subtests freeze
// a gateway, which must not meet the others' traffic.
func TestTopology(t *testing.T) {
	t0 := time.Now()
	override, env := bobHears(t)
	s := Up(t, Options{Overrides: []string{override}, Env: env})
	t.Logf("stack up in %s", time.Since(t0).Round(time.Millisecond))
	lb := "http://" + s.Published(t, "lb", 8080)

	t.Run("DSM clients spread by nginx", func(t *testing.T) { testDSMClients(t, lb) })
	browser := startBrowser(t)
	t.Run("page connects through the load balancer", func(t *testing.T) {
		_, inst := openPage(t, browser, lb+"/")
		t.Logf("the page's DSM WebSocket reached %s", inst)
	})
	t.Run("page calls bob", func(t *testing.T) { testCallBob(t, s, browser, lb) })
	for _, p := range []struct{ ws, claim string }{{"gw1", "gw2"}, {"gw2", "gw1"}} {
		t.Run("WebSocket on "+p.ws+", call on "+p.claim, func(t *testing.T) {
			testMediaPlacement(t, s, browser, lb, p.ws, p.claim)
		})
	}
	t.Run("a call survives SIGKILL of its gateway", func(t *testing.T) { testCallSurvives(t, s, browser, lb) })
	// Last: the gateways' recovery from a Redis restart is not what this checks.
	t.Run("Redis keeps its data and keyspace events over a restart", func(t *testing.T) { testRedisRestart(t, s) })
}

// testRedisRestart restarts the redis service and checks what its own command promises:
// the append-only file brings a write back, and notify-keyspace-events is set again (the
// gateways' CONFIG SET is lost with the restart and, today, not made again).
func testRedisRestart(t *testing.T, s *Stack) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(s.Service(t, "redis").Addr.String(), "6379")})
	defer rdb.Close()
	if err := rdb.Set(ctx, "topology:aof-check", "kept", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t, "redis")
	if v, err := rdb.Get(ctx, "topology:aof-check").Result(); err != nil || v != "kept" {
		t.Fatalf("after a restart: %q, %v; want the value written before (appendonly)", v, err)
	}
	cfg, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg["notify-keyspace-events"]; !strings.ContainsRune(f, 'K') || !strings.ContainsRune(f, 'h') || !strings.ContainsRune(f, 'g') {
		t.Fatalf("notify-keyspace-events %q after a restart, want K, h and g from the service's command", f)
	}
}
