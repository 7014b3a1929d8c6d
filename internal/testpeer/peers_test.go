package testpeer

import (
	"context"
	"testing"
	"time"
)

func TestRedisAndCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := StartRedis(t, RedisOptions{NotifyKeyspaceEvents: "Khg"})
	if err := r.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := StartCluster(t, RedisOptions{})
	if err := c.Client(t).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

// A sipp client places one call to a sipp server and exits with status 0, which Wait
// reports.
func TestSippCall(t *testing.T) {
	t.Parallel()
	uas := StartSipp(t, SippOptions{})
	uac := StartSipp(t, SippOptions{Scenario: "uac", Remote: uas.Addr, Args: []string{"-m", "1"}, NoWait: true})
	// A failure deadline: one loopback call takes milliseconds.
	code, err := uac.Wait(60 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("sipp uac exit %d, %v", code, err)
	}
	select {
	case <-uas.Done():
		t.Fatal("the server ended")
	default:
	}
}
