package redisrun

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/proc"
)

func TestStartStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Start(ctx, Options{NotifyKeyspaceEvents: "Khg", Proc: procOpts()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	got, err := c.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		t.Fatal(err)
	}
	// Redis normalises the flags' order.
	if v := got["notify-keyspace-events"]; len(v) != 3 {
		t.Fatalf("notify-keyspace-events %q", v)
	}
	if _, err := os.Stat(s.LogPath()); err != nil {
		t.Fatalf("log: %v", err)
	}
	pid := s.PID()
	s.Stop()
	select {
	case <-s.Done():
	default:
		t.Fatal("Stop returned before the server was reaped")
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("pid %d still exists", pid)
	}
	if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
		t.Fatalf("temporary directory left behind: %v", err)
	}
	s.Stop() // safe twice
}

func TestDenyConfigAndDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Start(ctx, Options{DenyConfig: true, MaxClients: 100, Dir: dir, Proc: procOpts()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	if err := c.ConfigGet(ctx, "maxclients").Err(); err == nil {
		t.Fatal("CONFIG still answers")
	}
	s.Stop()
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the caller's directory was removed: %v", err)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cl, err := StartCluster(ctx, Options{Proc: procOpts()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	if len(cl.Addrs) != 3 || len(cl.PIDs()) != 3 {
		t.Fatalf("%d masters, %d pids", len(cl.Addrs), len(cl.PIDs()))
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs})
	defer cc.Close()
	// Keys on every master: each hash tag lands in some slot; the client routes them.
	for _, k := range []string{"{a}k", "{b}k", "{c}k", "{d}k"} {
		if err := cc.Set(ctx, k, "v", 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	// ForEachMaster calls its function on every master at once.
	var n atomic.Int32
	if err := cc.ForEachMaster(ctx, func(context.Context, *redis.Client) error { n.Add(1); return nil }); err != nil || n.Load() != 3 {
		t.Fatalf("%d masters seen by the client: %v", n.Load(), err)
	}
}

// procOpts make every server die with the test binary.
func procOpts() proc.Options { return proc.Options{Pdeathsig: syscall.SIGKILL} }
