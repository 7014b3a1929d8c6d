package testpeer

import (
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// A peer whose port was taken between FreePort and its bind exits; startListening starts
// it again on another port.
func TestStartListeningRetriesATakenPort(t *testing.T) {
	bin := Need(t, "redis-server")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	picks := 0
	pick := func(t testing.TB) int {
		picks++
		if picks == 1 {
			return busy
		}
		return FreePort(t)
	}
	port, _ := startListening(t, "redis", pick, func(port int) *exec.Cmd {
		return exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", t.TempDir())
	}, 10*time.Second)
	if port == busy || picks != 2 {
		t.Fatalf("port %d after %d picks (busy %d)", port, picks, busy)
	}
}
