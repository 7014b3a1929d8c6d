package store_test

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"dsmgw/store"
)

// A zero Config is DefaultConfig, and a partly set one keeps what was set and takes the
// rest, each Limits field included, from DefaultConfig. New reads nothing from Redis, so
// a client that never connects will do.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	st, err := store.New(store.Config{}, rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Config(); got != store.DefaultConfig() {
		t.Fatalf("zero Config became %+v; want %+v", got, store.DefaultConfig())
	}
	st, err = store.New(store.Config{Shards: 4, Limits: store.Limits{MaxValueBytes: 10}}, rdb, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := store.DefaultConfig()
	want.Shards, want.Limits.MaxValueBytes = 4, 10
	if got := st.Config(); got != want {
		t.Fatalf("partial Config became %+v; want %+v", got, want)
	}
	if store.DefaultLimits() != store.DefaultConfig().Limits {
		t.Fatal("DefaultLimits differs from DefaultConfig's")
	}
}
