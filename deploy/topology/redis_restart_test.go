package topology

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisRestart restarts the redis service (append-only file, and no keyspace setting in
// its command: testdata/faults.yml) under DSM load. The gateways must set
// notify-keyspace-events again on their own, report it (/readyz detail), and a write made
// outside the commit path after the restart must reach subscribers; no acknowledged op may
// be lost.
func (f *faults) redisRestart(t *testing.T) {
	s := f.s
	rdb := redisClient(t, s)
	load := startDSMLoad(t, f.lb, 6)
	time.Sleep(time.Second) // some ops before the restart
	gws := []string{"gw1", "gw2", "gw3"}
	setsBefore := 0
	for _, gw := range gws {
		setsBefore += keyspaceSets(t, readyz(t, s, gw))
	}
	t0 := time.Now()
	s.Restart(t, "redis")
	t.Logf("redis restarted and healthy in %s", time.Since(t0).Round(time.Millisecond))
	cfg, err := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
	if err == nil {
		t.Logf("notify-keyspace-events right after the restart: %q (the service sets none)", cfg["notify-keyspace-events"])
	}
	// Every gateway checks the setting when its keyspace listener reconnects; the first
	// to find it missing sets it, the others find it set.
	took := waitFor(t, "a gateway setting notify-keyspace-events again", 30*time.Second, func() bool {
		c, err := rdb.ConfigGet(context.Background(), "notify-keyspace-events").Result()
		return err == nil && hasAll(c["notify-keyspace-events"], "Khg")
	})
	t.Logf("keyspace notifications set again %s after Redis was healthy", took.Round(time.Millisecond))
	setsAfter := 0
	for _, gw := range gws {
		body := readyz(t, s, gw)
		if !strings.Contains(body, " ok, set ") {
			t.Errorf("%s /readyz after the restart: %q", gw, body)
		}
		setsAfter += keyspaceSets(t, body)
	}
	if setsAfter <= setsBefore {
		t.Errorf("the gateways report %d sets of the setting after the restart, %d before: none set it again", setsAfter, setsBefore)
	}

	// A write outside the commit path (redis-cli, an operator) reaches the subscriber of
	// the object as a resync: the keyspace events flow again.
	w := load.writers[0]
	key := dsmFieldsKey(t, rdb, w.obj)
	if err := rdb.HSet(context.Background(), key, "outside", "after-restart").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the outside write at the subscriber", 15*time.Second, func() bool {
		v, _ := w.so.Get("outside")
		return v == "after-restart"
	})
	acked, reconnects := load.stopAndCheck(t, f.lb)
	t.Logf("DSM load over the restart: %d ops acknowledged, none lost; %d reconnects", acked, reconnects)
}

var setsRE = regexp.MustCompile(`set (\d+) times`)

// keyspaceSets reads how many times a gateway set the keyspace setting, from its /readyz.
func keyspaceSets(t *testing.T, body string) int {
	t.Helper()
	m := setsRE.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// dsmFieldsKey finds the Redis hash holding an object's fields.
func dsmFieldsKey(t *testing.T, rdb *redis.Client, obj string) string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "dsm:{*}:f:"+obj).Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("fields key of %s: %v %v", obj, keys, err)
	}
	return keys[0]
}
