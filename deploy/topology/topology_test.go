package topology

import (
	"testing"
	"time"
)

// TestTopology runs docker-compose.yml (Redis, Kamailio with baresip as bob, two gateways,
// nginx in front) and uses it as a user would, through the load balancer's published
// port. One stack serves the subtests, in order: starting it is most of the cost.
func TestTopology(t *testing.T) {
	t0 := time.Now()
	s := Up(t, Options{})
	t.Logf("stack up in %s", time.Since(t0).Round(time.Millisecond))
	lb := "http://" + s.Published(t, "lb", 8080)

	browser := startBrowser(t)
	t.Run("page connects through the load balancer", func(t *testing.T) {
		_, inst := openPage(t, browser, lb+"/")
		t.Logf("the page's DSM WebSocket reached %s", inst)
	})
}
