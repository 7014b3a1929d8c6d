package testpeer

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions tunes a test redis-server.
type RedisOptions struct {
	// NotifyKeyspaceEvents is passed as notify-keyspace-events ("" leaves it off, as a
	// managed Redis might).
	NotifyKeyspaceEvents string
	// DenyConfig renames CONFIG away, as managed Redis services do.
	DenyConfig bool
	// Cluster starts the server with cluster mode enabled (used by StartCluster).
	Cluster bool
}

// Redis is a private redis-server started for one test.
type Redis struct {
	Addr string
	PID  int
}

// StartRedis starts a redis-server on a free port with no persistence and returns once it
// answers PING. It is stopped when the test ends.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	bin := Need(t, "redis-server")
	dir := t.TempDir()
	port, cmd := startListening(t, "redis", FreePort, func(port int) *exec.Cmd {
		args := []string{
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--protected-mode", "no",
			"--notify-keyspace-events", opts.NotifyKeyspaceEvents,
			"--daemonize", "no", "--loglevel", "warning",
		}
		if opts.DenyConfig {
			args = append(args, "--rename-command", "CONFIG", "")
		}
		if opts.Cluster {
			args = append(args, "--cluster-enabled", "yes", "--cluster-config-file",
				dir+"/nodes-"+strconv.Itoa(port)+".conf", "--cluster-node-timeout", "2000")
		}
		return exec.Command(bin, args...)
	}, 10*time.Second)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	if err := waitPing(addr, 10*time.Second); err != nil {
		t.Fatalf("testpeer: redis-server on %s: %v", addr, err)
	}
	return &Redis{Addr: addr, PID: cmd.Process.Pid}
}

// Client returns a go-redis client for the server, closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func waitPing(addr string, timeout time.Duration) error {
	if err := waitTCP(addr, timeout); err != nil {
		return err
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no PONG: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Cluster is a private 3-master Redis Cluster.
type Cluster struct {
	Addrs []string
}

// StartCluster starts three cluster-enabled redis-servers, joins them with
// `redis-cli --cluster create` (no replicas) and waits until the cluster state is ok.
func StartCluster(t testing.TB, opts RedisOptions) *Cluster {
	t.Helper()
	cli := Need(t, "redis-cli")
	opts.Cluster = true
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, StartRedis(t, opts).Addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("testpeer: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("testpeer: cluster not ok on %s: %v %s", a, err, info)
			}
			time.Sleep(100 * time.Millisecond)
		}
		c.Close()
	}
	return &Cluster{Addrs: addrs}
}

// Client returns a go-redis cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { cc.Close() })
	return cc
}
