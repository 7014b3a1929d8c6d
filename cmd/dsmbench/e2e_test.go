package main

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
)

// TestMain lets the test binary serve as the gateway child: dsmbench re-executes its own
// executable with the serve flag, which in a test is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveFlag {
		runServe()
	}
	os.Exit(m.Run())
}

// TestEndToEnd runs the whole tool briefly (its own redis-server, two gateway children,
// 20 clients) and checks that ops were acknowledged and nothing was lost. It asserts
// nothing about speed.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	testpeer.Need(t, "redis-server")
	var out bytes.Buffer
	o := options{
		c: 20, d: 4, g: 10, mode: "closed", arrival: "poisson", gateways: 2,
		duration: 2 * time.Second, warmup: 500 * time.Millisecond, drain: 10 * time.Second,
		settle: 200 * time.Millisecond, baseline: 500 * time.Millisecond, keyspace: true,
		dialRate: 500, dialConc: 8, quiet: true, out: &out, commandLine: "test",
	}
	// A failure deadline, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := run(ctx, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.ackedInWin == 0 || res.loss.acked == 0 {
		t.Fatalf("no op acknowledged: %+v", res.loss)
	}
	if res.loss.neverAcked != 0 || res.loss.notReceived != 0 || res.loss.nacked != 0 {
		t.Fatalf("lost or refused ops: %+v, codes %v", res.loss, res.codes)
	}
	if res.recv.N == 0 {
		t.Fatal("no receipt by another subscriber was measured")
	}
	if res.base == nil || res.base.commits == 0 {
		t.Fatal("the raw baseline measured nothing")
	}
}

func TestOptionsRefuseOutOfBounds(t *testing.T) {
	for name, args := range map[string][]string{
		"too many clients":  {"-c", "50000"},
		"bad mode":          {"-mode", "burst"},
		"open without rate": {"-mode", "open", "-rate", "0"},
		"too many gateways": {"-gateways", "99"},
		"too long":          {"-duration", "2h"},
		"stray argument":    {"extra"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
	o, err := parseFlags([]string{"-c", "30"})
	if err != nil || o.d != 30 || o.baselineC != 30 {
		t.Fatalf("defaults: %+v %v", o, err)
	}
}
