package redisrun

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds the wait for a new cluster's state to become ok on every node:
// the nodes gossip the slot assignment within a second or two on loopback; 20 s covers a
// loaded machine.
const clusterTimeout = 20 * time.Second

// Cluster is a private 3-master Redis Cluster without replicas.
type Cluster struct {
	// Addrs are the masters' addresses, the seeds of a cluster client.
	Addrs   []string
	Servers []*Server
}

// StartCluster starts three cluster-enabled redis-servers with o, joins them with
// `redis-cli --cluster create` (no replicas) and returns once every node reports
// cluster_state:ok.
func StartCluster(ctx context.Context, o Options) (*Cluster, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redis-cli not installed (apt-get install redis-tools): %w", err)
	}
	o.cluster = true
	c := &Cluster{}
	for range 3 {
		s, err := Start(ctx, o)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Servers = append(c.Servers, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	// A short-lived command whose output is all we need: it is not a child to manage.
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// waitOK waits until every node reports cluster_state:ok.
func (c *Cluster) waitOK(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, clusterTimeout)
	defer cancel()
	for _, a := range c.Addrs {
		rc := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				rc.Close()
				return fmt.Errorf("cluster not ok on %s: %w (last: %v %q)", a, ctx.Err(), err, info)
			case <-time.After(100 * time.Millisecond):
			}
		}
		rc.Close()
	}
	return nil
}

// PIDs returns the servers' process IDs.
func (c *Cluster) PIDs() []int {
	var pids []int
	for _, s := range c.Servers {
		pids = append(pids, s.PID())
	}
	return pids
}

// Stop stops every node. It is safe to call twice.
func (c *Cluster) Stop() {
	for _, s := range c.Servers {
		s.Stop()
	}
}
