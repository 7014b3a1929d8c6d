package testpeer

import (
	"context"
	"errors"
	"net"
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
	uac := StartSipp(t, SippOptions{Scenario: "uac", Remote: uas.Addr, Args: []string{"-m", "1"}})
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

// A sipp whose port another process holds is not taken for ready because something
// answers there: startSipp sees that sipp itself does not hold the port and reports the
// bind failure, on which StartSipp starts it again on new ports.
func TestSippPortTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.LocalAddr().(*net.UDPAddr).Port
	_, err = startSipp(t, Need(t, "sipp"), SippOptions{Scenario: "uas", Transport: "u1", Host: "127.0.0.1",
		Port: port, MediaPort: freeMediaPort(t)})
	if !errors.Is(err, errSippBind) {
		t.Fatalf("sipp on a taken port: %v, want %v", err, errSippBind)
	}
	s := StartSipp(t, SippOptions{})
	if socks := socketsOf(s.PID); !holds(socks, boundPort{proto: "udp", port: s.Port}) {
		t.Fatalf("sipp (pid %d) does not hold its port %d", s.PID, s.Port)
	}
}
