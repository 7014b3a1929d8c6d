package testpeer

import (
	"strconv"

	"testing"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/redisrun"
)

// RedisOptions tunes a test redis-server (redisrun.Options). Dir defaults to a test
// temporary directory and the server dies with the test binary.
type RedisOptions = redisrun.Options

// Redis is a private redis-server started for one test.
type Redis struct {
	Addr string
	PID  int
}

// StartRedis starts a redis-server on a free port with no persistence and returns once it
// answers PING. It is stopped when the test ends.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	Need(t, "redis-server")
	s, err := redisrun.Start(t.Context(), testRedisOptions(t, opts))
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	stopRedisOnCleanup(t, s)
	return &Redis{Addr: s.Addr, PID: s.PID()}
}

// testRedisOptions fills what a test's servers share: files in the test's temporary
// directory, and death with the test binary.
func testRedisOptions(t testing.TB, opts RedisOptions) RedisOptions {
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	opts.Proc.Pdeathsig = peerOptions("").Pdeathsig
	return opts
}

func stopRedisOnCleanup(t testing.TB, s *redisrun.Server) {
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			logTail(t, "redis-server "+s.Addr+" (pid "+strconv.Itoa(s.PID())+")", s.LogPath())
		}
	})
}

// Client returns a go-redis client for the server, closed when the test ends.
func (r *Redis) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// Cluster is a private 3-master Redis Cluster.
type Cluster struct {
	Addrs []string
}

// StartCluster starts three cluster-enabled redis-servers, joins them with
// `redis-cli --cluster create` (no replicas) and waits until the cluster state is ok
// (redisrun.StartCluster). The servers are stopped when the test ends.
func StartCluster(t testing.TB, opts RedisOptions) *Cluster {
	t.Helper()
	Need(t, "redis-server")
	Need(t, "redis-cli")
	c, err := redisrun.StartCluster(t.Context(), testRedisOptions(t, opts))
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	for _, s := range c.Servers {
		stopRedisOnCleanup(t, s)
	}
	return &Cluster{Addrs: c.Addrs}
}

// Client returns a go-redis cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { cc.Close() })
	return cc
}
