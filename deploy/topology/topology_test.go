package topology

import (
	"testing"
	"time"
)

// TestTopology runs docker-compose.yml (Redis, Kamailio with baresip as bob, two gateways,
// nginx in front) and uses it as a user would, through the load balancer's published
// port. One stack serves the subtests, in order: starting it is most of the cost, and the
// placement subtests freeze a gateway, which must not meet the others' traffic.
func TestTopology(t *testing.T) {
	t0 := time.Now()
	s := Up(t, Options{})
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
}
