package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"dsmgw/internal/proc"
)

// shards is the gateway's DSM_SHARDS (its default; serve mode does not change it).
const shards = 16

// snapshot is what one reading of Redis and the gateway found.
type snapshot struct {
	keys     int64           // keys, without the janitor's lease (there one round in eight)
	names    map[string]bool // their names
	used     int64           // INFO memory used_memory
	dataset  int64           // used_memory_dataset
	clients  int64           // connected_clients (the gateway's pool)
	rss      int64           // the gateway's RSS after returning freed memory to the OS
	writers  int64           // entries of the writer indexes: sessions whose life is not over
	presence int64           // client keys in the presence set
	feed     int64           // entries in the feed streams
	players  int64           // fields of the players index
	writerMB float64
	cliMem   int64             // mem_clients_normal: the connections' buffers, not data
	gor      int64             // the gateway's goroutines (go_goroutines)
	heap     int64             // the gateway's heap in use after a GC (go_memstats_heap_inuse_bytes)
	stack    int64             // the gateway's goroutine stacks (go_memstats_stack_inuse_bytes)
	perKey   map[string]int64  // MEMORY USAGE of every key (with -v)
	stats    map[string]string // MEMORY STATS (with -v)
}

// measure reads Redis and the gateway's RSS; gw gets SIGUSR1 first (it frees what it can)
// unless it is nil.
func measure(ctx context.Context, rdb *redis.Client, gw *proc.Child, metricsURL string, perKey bool) (snapshot, error) {
	var s snapshot
	if gw != nil {
		_ = syscall.Kill(gw.PID(), syscall.SIGUSR1)
		time.Sleep(500 * time.Millisecond) // FreeOSMemory runs a GC and returns pages
		rss, err := proc.RSS(gw.PID())
		if err != nil {
			return s, err
		}
		s.rss = rss
		if metricsURL != "" {
			gatewayMetrics(ctx, metricsURL, &s)
		}
	}
	// The key names in one command, so that the count and the names agree: the janitor's
	// lease (there one round in eight) is left out, other keys that come and go are named
	// in the report.
	names, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		return s, err
	}
	s.names = make(map[string]bool, len(names))
	for _, k := range names {
		if k != "dsm:janitor" {
			s.names[k] = true
		}
	}
	s.keys = int64(len(s.names))
	info, err := rdb.Info(ctx, "memory", "clients").Result()
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		if !ok {
			continue
		}
		x, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "used_memory":
			s.used = x
		case "used_memory_dataset":
			s.dataset = x
		case "connected_clients":
			s.clients = x
		case "mem_clients_normal":
			s.cliMem = x
		}
	}
	for i := range shards {
		w, _ := rdb.ZCard(ctx, fmt.Sprintf("dsm:{%d}:w", i)).Result()
		f, _ := rdb.XLen(ctx, fmt.Sprintf("dsm:{%d}:feed", i)).Result()
		s.writers += w
		s.feed += f
		if b, err := rdb.MemoryUsage(ctx, fmt.Sprintf("dsm:{%d}:w", i), 0).Result(); err == nil {
			s.writerMB += float64(b) / (1 << 20)
		}
	}
	s.presence, _ = rdb.ZCard(ctx, "dsm:presence").Result()
	if perKey {
		s.stats = map[string]string{}
		if res, err := rdb.Do(ctx, "MEMORY", "STATS").Result(); err == nil {
			if m, ok := res.(map[any]any); ok { // RESP3
				for k, v := range m {
					s.stats[fmt.Sprint(k)] = fmt.Sprint(v)
				}
			}
		}
		s.perKey = map[string]int64{}
		keys, _ := rdb.Keys(ctx, "*").Result()
		for _, k := range keys {
			if b, err := rdb.MemoryUsage(ctx, k, 0).Result(); err == nil {
				s.perKey[k] = b
			}
		}
	}
	idx, _ := rdb.Keys(ctx, "dsm:{*}:f:players").Result()
	for _, k := range idx {
		h, _ := rdb.HLen(ctx, k).Result()
		s.players += h
	}
	return s, nil
}

// waitQuiet waits until what the sessions left is gone: only the live pages' writer index
// entries (two each: player and index), presence and index entries, and no feed entry
// (with keep, only the feed: the janitor removes nothing then). It returns how long that
// took.
func waitQuiet(ctx context.Context, rdb *redis.Client, live int64, keep bool, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		s, err := measure(ctx, rdb, nil, "", false)
		if err != nil {
			return 0, err
		}
		if s.feed == 0 && (keep || s.writers == 2*live && s.presence == live && s.players == live) {
			return time.Since(start), nil
		}
		if time.Since(start) > limit {
			return 0, fmt.Errorf("not quiet after %v: %d writer entries, %d present keys, %d index entries, %d feed entries",
				limit, s.writers, s.presence, s.players, s.feed)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// gatewayMetrics reads the gateway's goroutines, heap in use and stacks from /metrics
// (right after the reading's SIGUSR1, so after a GC).
func gatewayMetrics(ctx context.Context, metricsURL string, s *snapshot) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			s.gor = int64(f)
		case "go_memstats_heap_inuse_bytes":
			s.heap = int64(f)
		case "go_memstats_stack_inuse_bytes":
			s.stack = int64(f)
		}
	}
}
