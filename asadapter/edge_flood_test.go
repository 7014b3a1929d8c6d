package asadapter

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"dsmgw/asadapter/edge"
	"dsmgw/asadapter/users"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// floodBatch is how many requests the test's flood sends before it waits for the edge
// to have decided on them: a socket buffer of the kernel's default size (some 200 KiB, at
// about 2 KiB a datagram) holds about a hundred, so a batch never overflows it, however
// slowly the race detector lets the gateway read.
const floodBatch = 50

// floodMessage is the i-th request of a scan from src to the gateway at to: INVITEs to a
// registered user and to users that do not exist, and REGISTERs, each a new transaction.
func floodMessage(i int, src, to, user string) []byte {
	id := "flood" + strconv.Itoa(i)
	method, ruri := "INVITE", "sip:"+user+"@"+to
	switch i % 3 {
	case 1:
		ruri = "sip:" + id + "@" + to
	case 2:
		method, ruri = "REGISTER", "sip:"+to
	}
	return []byte(method + " " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + src + ";branch=z9hG4bK-" + id + ";rport\r\n" +
		"From: <sip:" + id + "@scanner.example>;tag=" + id + "\r\n" +
		"To: <" + ruri + ">\r\n" +
		"Call-ID: " + id + "@scanner.example\r\n" +
		"CSeq: 1 " + method + "\r\n" +
		"P-Asserted-Identity: <sip:bank@bank.example>\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

// refusedAll sums the edge's refusals over every reason.
func refusedAll(e *edge.Edge) uint64 {
	var n uint64
	for r := edge.ReasonUntrusted; r <= edge.ReasonForeignDomain; r++ {
		n += e.Refusals(r)
	}
	return n
}

// flood sends n requests from ip to the adapter, batch by batch, each batch once the edge
// has refused the one before, and returns how many answers came back. It may run on a
// goroutine of its own: it reports failures as errors.
func flood(a *Adapter, ip string, first, n int) (int, error) {
	c, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	ra, err := net.ResolveUDPAddr("udp", a.Addr("udp"))
	if err != nil {
		return 0, err
	}
	var answers int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65535)
		for {
			if _, _, err := c.ReadFrom(buf); err != nil {
				return // closed below
			}
			answers++
		}
	}()
	start := refusedAll(a.edge)
	for i := first; i < first+n; i += floodBatch {
		for j := i; j < min(i+floodBatch, first+n); j++ {
			if _, err := c.WriteTo(floodMessage(j, c.LocalAddr().String(), a.Addr("udp"), "web1"), ra); err != nil {
				return 0, err
			}
		}
		want := start + uint64(min(i+floodBatch, first+n)-first)
		for deadline := time.Now().Add(waitFor); refusedAll(a.edge) < want; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("the edge decided on %d of %d requests", refusedAll(a.edge)-start, want-start)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // the last answers' way back (counted for the log only)
	_ = c.Close()
	wg.Wait()
	return answers, nil
}

// commandStats returns Redis's count of calls per command.
func commandStats(t *testing.T, e *env) map[string]int {
	t.Helper()
	info, err := e.st.Redis().Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(l), ":calls=")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
		out[strings.TrimPrefix(name, "cmdstat_")] = n
	}
	return out
}

// backgroundCommand tells the Redis commands that go on whatever SIP arrives: the feed's
// blocking reads and its check of the keyspace setting (a CONFIG GET every 5 s, which a
// slow flood on a loaded machine may span); INFO is the test's own.
func backgroundCommand(cmd string) bool {
	return cmd == "xread" || cmd == "config|get" || cmd == "info"
}

// quietStats waits until the adapter has stopped using Redis (the registration's last
// writes and reads may still be in flight when the REGISTER is answered) and returns the
// command counts then: two samples 300 ms apart that agree but for background commands.
func quietStats(t *testing.T, e *env) map[string]int {
	t.Helper()
	prev := commandStats(t, e)
	for deadline := time.Now().Add(waitFor); ; {
		time.Sleep(300 * time.Millisecond)
		cur := commandStats(t, e)
		same := true
		for cmd, calls := range cur {
			same = same && (backgroundCommand(cmd) || calls == prev[cmd])
		}
		if same {
			return cur
		}
		if time.Now().After(deadline) {
			t.Fatalf("Redis never quiet before the flood: %v then %v", prev, cur)
		}
		prev = cur
	}
}

// heapAndGoroutines returns the live heap after a collection and the goroutine count.
func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, runtime.NumGoroutine()
}

// TestFloodCostsNothing: a scan from one untrusted source (INVITEs to a registered user
// and to nobody, REGISTERs, all with a forged P-Asserted-Identity) is refused at the
// edge: no Redis command is spent on it (INFO commandstats before and after, with the
// adapter's and the users side's periodic reads set far apart), the live heap and the
// goroutines come back to where they were, and a second flood does not keep a call
// through the CSCF from connecting. Not parallel: it measures the process.
func TestFloodCostsNothing(t *testing.T) {
	e := newEnv(t)
	k := testpeer.StartKamailio(t)
	r := startUsersOnAdapter(t, e, Config{OutboundProxy: k.URI("udp"), Rescan: time.Hour, NoKeyspace: true,
		Edge: edge.Config{Trusted: []string{}}},
		users.Config{LeaseTTL: time.Hour, Scan: time.Hour, SessionTTL: time.Hour})
	registerUsers(t, e, r, r.a, "web1")
	const n = 3000

	heap0, gor0 := heapAndGoroutines()
	before := quietStats(t, e)
	answers, err := flood(r.a, attackerIP, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	after := commandStats(t, e)
	for cmd, calls := range after {
		if !backgroundCommand(cmd) && calls != before[cmd] {
			t.Errorf("Redis %s: %d calls during the flood (%d before, %d after)", cmd, calls-before[cmd], before[cmd], calls)
		}
	}
	if answers > n {
		t.Errorf("%d answers to %d requests", answers, n)
	}
	var heap1 uint64
	var gor1 int
	for deadline := time.Now().Add(waitFor); ; time.Sleep(50 * time.Millisecond) {
		heap1, gor1 = heapAndGoroutines()
		if heap1 < heap0+4<<20 && gor1 <= gor0+2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the flood: heap %d → %d bytes, goroutines %d → %d", heap0, heap1, gor0, gor1)
		}
	}
	t.Logf("flood of %d: %d answers, %d untrusted, %d rate-limited, %d dropped; heap %d → %d KiB, goroutines %d → %d",
		n, answers, r.a.edge.Refusals(edge.ReasonUntrusted), r.a.edge.Refusals(edge.ReasonRateLimited),
		r.a.edge.Refusals(edge.ReasonFlood), heap0>>10, heap1>>10, gor0, gor1)

	// A call through the CSCF while the same source floods again.
	p := "players/Kweb1/audio"
	var wg sync.WaitGroup
	wg.Add(1)
	var floodErr error
	go func() { defer wg.Done(); _, floodErr = flood(r.a, attackerIP, n, n) }()
	s := scenarioFrom(t, "call_via_proxy.xml", "127.0.0.1", k.Addr, "-s", "web1")
	e.waitField(p, "player_state", "ringing")
	e.browser(p, store.Set("player_state", "connecting"))
	e.waitField(p, "mgw_state", "connected")
	waitSipp(t, s)
	e.waitField(p, "player_state", "disconnected")
	wg.Wait()
	if floodErr != nil {
		t.Fatal(floodErr)
	}
	if fl := e.fields(p); !strings.Contains(fl["caller"], "phone@") {
		t.Fatalf("the call through the CSCF: %v", fl)
	}
}
