package main

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/gateway"
	"dsmgw/internal/testpeer"
)

// startProductionGateway runs a gateway with the web and bridge roles as deployed:
// production grants and op rate; it returns its base URL.
func startProductionGateway(t *testing.T, redisAddr, instance string) string {
	t.Helper()
	cfg := gateway.DefaultConfig()
	cfg.Roles = []string{gateway.RoleWeb, gateway.RoleBridge}
	cfg.HTTPAddr, cfg.RedisAddrs, cfg.Instance = "127.0.0.1:0", []string{redisAddr}, instance
	cfg.DSMSecret = "target-test-secret-0123456789"
	cfg.Drain = time.Second
	app, err := gateway.Build(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(15 * time.Second); app.Ready(context.Background()) != nil; {
		if time.Now().After(deadline) {
			t.Fatal("gateway not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return "http://" + app.Addr().String()
}

// TestTarget loads two running gateways with production grants, through one and then
// directly at both: ops are acknowledged and received, none refused (the workload fits
// the grants and the op rate), nothing lost. It asserts nothing about speed.
func TestTarget(t *testing.T) {
	t.Parallel()
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	gw1, gw2 := startProductionGateway(t, r.Addr, "t1"), startProductionGateway(t, r.Addr, "t2")
	var out bytes.Buffer
	o, err := parseFlags([]string{"-target", gw1, "-direct", gw1 + "," + gw2, "-c", "20", "-g", "5",
		"-duration", "1s", "-warmup", "200ms", "-settle", "100ms", "-redis", r.Addr, "-redis-pid", "0",
		"-baseline", "300ms", "-cpu", "redis=" + itoa(r.PID)})
	if err != nil {
		t.Fatal(err)
	}
	o.out, o.quiet = &out, true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a failure deadline
	defer cancel()
	res, err := runTarget(ctx, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Phases) != 2 || res.Baseline == 0 {
		t.Fatalf("phases %d, baseline %v", len(res.Phases), res.Baseline)
	}
	for _, ph := range res.Phases {
		l := ph.Loss
		if l.Acked == 0 || l.NeverAcked != 0 || l.NotReceived != 0 || l.Nacked != 0 || len(ph.Codes) != 0 {
			t.Errorf("%s: %+v codes %v", ph.Name, l, ph.Codes)
		}
		if _, ok := ph.CPU["redis"]; !ok {
			t.Errorf("%s: no CPU figure for redis", ph.Name)
		}
	}
	if d := res.Phases[1].Instances; d["t1"] == 0 || d["t2"] == 0 {
		t.Errorf("direct phase not spread over both gateways: %v", d)
	}
	if !strings.Contains(out.String(), "through ÷ direct") {
		t.Error("no ratio of the phases in the report")
	}
}

func TestTargetOptions(t *testing.T) {
	for name, args := range map[string][]string{
		"shared player objects": {"-target", "http://127.0.0.1:1", "-c", "10", "-d", "5"},
		"direct alone":          {"-direct", "http://127.0.0.1:1"},
		"not a URL":             {"-target", "127.0.0.1:8080"},
		"bad cpu":               {"-target", "http://127.0.0.1:1", "-cpu", "nginx"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%s: %v accepted", name, args)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
