package sipfuzz

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/gwchild"
	"dsmgw/internal/proc"
	"dsmgw/internal/testpeer"
)

// TestMain lets the test binary be the gateway of TestNetworkFuzz (gwchild's serve mode):
// built with -race, the gateway is checked for races under the fuzz as well.
func TestMain(m *testing.M) {
	gwchild.MaybeServe()
	os.Exit(m.Run())
}

func TestCorpus(t *testing.T) {
	seeds, err := LoadCorpus("../..")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, s := range seeds {
		switch {
		case strings.HasSuffix(s.Name, ".sip"):
			kinds["sip"]++
		case strings.Contains(s.Name, ".xml#"):
			kinds["scenario"]++
		default:
			kinds["fuzz corpus"]++
		}
	}
	if kinds["sip"] < 5 || kinds["scenario"] < 20 {
		t.Fatalf("seeds by kind: %v", kinds)
	}
	msg := Fill("INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n[routes]\nCall-ID: [call_id]\nContent-Length: [len]\n\nv=0\n",
		Target{Local: "127.0.0.1:5555", Remote: "127.0.0.1:5060", Transport: "UDP", User: "bob", ID: "7"})
	want := "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5555;branch=z9hG4bK-7\r\nCall-ID: 7@fuzz\r\nContent-Length: 5\r\n\r\nv=0\r\n"
	if msg != want {
		t.Fatalf("Fill:\n%q\nwant\n%q", msg, want)
	}
}

// gatewayStats reads the gateway's goroutines and live heap from its metrics.
func gatewayStats(t *testing.T, addr string) (goroutines, heap float64) {
	t.Helper()
	m, err := gwchild.Metrics(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return m["go_goroutines"], m["go_memstats_heap_inuse_bytes"]
}

// TestNetworkFuzz is the short network fuzz run: mutated messages of the project's seeds
// over UDP and TCP, from inside the trust domain (the SIP stack and call control see them)
// and from outside (the edge answers), to a gateway in a child process. The gateway does
// not crash, answers every well-formed request, and its goroutines and live heap come
// back once the transactions of the run have ended. cmd/sipfuzz runs it at length.
func TestNetworkFuzz(t *testing.T) {
	seeds, err := LoadCorpus("../..")
	if err != nil {
		t.Fatal(err)
	}
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	sip := "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
	base := 30000 + 2*(testpeer.FreePort(t)%5000)
	env := []string{"GATEWAY_ROLES=asadapter,mediagw", "HTTP_ADDR=127.0.0.1:0", "REDIS_ADDRS=" + r.Addr,
		"INSTANCE=fuzz", "MGW_SECRET=fuzz-secret-0123456789", "USERS_SECRET=fuzz-secret-0123456789",
		"SIP_LISTEN_UDP=" + sip, "SIP_LISTEN_TCP=" + sip, "SIP_TRUSTED_PEERS=127.0.0.1",
		"SIP_SOURCE_RATE=1000000", "SIP_SOURCE_DROP_RATE=1000000", "LOG_LEVEL=warn",
		"MGW_PORT_MIN=" + strconv.Itoa(base), "MGW_PORT_MAX=" + strconv.Itoa(base+99)}
	logPath := filepath.Join(t.TempDir(), "gateway.log")
	gw, httpAddr, err := gwchild.Start(context.Background(), "fuzzed gateway", env, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	g0, h0 := gatewayStats(t, httpAddr)

	for i, run := range []struct{ transport, ip string }{
		{"udp", "127.0.0.1"}, {"tcp", "127.0.0.1"}, {"udp", "127.0.0.3"}, {"tcp", "127.0.0.3"},
	} {
		res, err := Run(context.Background(), Config{Gateway: sip, LocalIP: run.ip, Transport: run.transport,
			Messages: 1000, Rate: 2000, Window: 100, Seed: uint64(i + 1)}, seeds)
		if err != nil {
			t.Fatalf("%s from %s: %v", run.transport, run.ip, err)
		}
		t.Logf("%s from %s: %d sent, %d well-formed, %d answered, %d reconnects, %d unframed streams, %d stray responses",
			run.transport, run.ip, res.Sent, res.WellFormed, res.Answered, res.Reconnects, res.BadStream, res.UnexpectedResp)
		if res.UnansweredN > 0 || res.WellFormed < 20 {
			t.Errorf("%s from %s: %d well-formed requests unanswered (of %d), first:\n%s", run.transport, run.ip,
				res.UnansweredN, res.WellFormed, strings.Join(res.Unanswered, "\n----\n"))
		}
		select {
		case <-gw.Done():
			b, _ := os.ReadFile(logPath)
			t.Fatalf("the gateway died: %v\n%s", gw.Wait(), b)
		default:
		}
	}
	// Non-INVITE server transactions over UDP live 32 s after their answer (Timer J).
	var g1, h1 float64
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		g1, h1 = gatewayStats(t, httpAddr)
		if g1 <= g0+5 && h1 <= h0+8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the run: goroutines %v → %v, heap in use %v → %v MiB", g0, g1, h0/(1<<20), h1/(1<<20))
		}
	}
	rss, _ := proc.RSS(gw.PID())
	t.Logf("gateway after the run: goroutines %v → %v, heap in use %.1f → %.1f MiB, RSS %.1f MiB",
		g0, g1, h0/(1<<20), h1/(1<<20), float64(rss)/(1<<20))
}
