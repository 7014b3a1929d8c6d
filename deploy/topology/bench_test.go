package topology

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BenchmarkDSMThroughNginx measures DSM throughput through nginx with one, two and three
// gateways of the compose topology, each beside the same workload sent straight to the
// gateways behind nginx in the same run, with the CPU of nginx, each gateway, Redis and
// the load generator (cmd/dsmbench -target; the production grants and op rate). It runs
// once however large b.N is:
//
//	go test -run X -bench DSMThroughNginx -benchtime 1x ./deploy/topology
//
// DSMBENCH_ARGS adds dsmbench flags (say "-c 300 -duration 20s").
func BenchmarkDSMThroughNginx(b *testing.B) {
	overrides, err := filepath.Abs(faultsFile)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	lbConf := filepath.Join(dir, "nginx.conf")
	writeLBConf(b, lbConf, "gw1", "gw2")
	s := Up(b, Options{Overrides: []string{overrides}, Env: map[string]string{"DSMGW_LB_CONF": lbConf}})
	s.Start(b, "gw3")
	bench := filepath.Join(dir, "dsmbench")
	build := exec.Command(goTool(), "build", "-o", bench, "./cmd/dsmbench")
	file, _ := findComposeFile()
	build.Dir = filepath.Dir(file)
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/dsmbench: %v\n%s", err, out)
	}
	f := &faults{s: s, lbConf: lbConf}
	addr := func(name string) string { return "http://" + s.Service(b, name).Addr.String() + ":8080" }
	var cpu []string
	for _, name := range []string{"lb", "gw1", "gw2", "gw3", "redis"} {
		cpu = append(cpu, fmt.Sprintf("%s=%d", name, s.Service(b, name).PID()))
	}
	redis := s.Service(b, "redis")
	for n := 1; n <= 3; n++ {
		var gws, direct []string
		for i := 1; i <= n; i++ {
			gws = append(gws, fmt.Sprintf("gw%d", i))
			direct = append(direct, addr(gws[i-1]))
		}
		writeLBConf(b, lbConf, gws...)
		f.reloadLB(b)
		time.Sleep(time.Second) // nginx's new workers take over
		out := filepath.Join(dir, fmt.Sprintf("gw%d.json", n))
		args := []string{"-target", addr("lb"), "-direct", strings.Join(direct, ","), "-cpu", strings.Join(cpu, ","),
			"-json", out, "-c", "150", "-g", "10", "-duration", "10s", "-warmup", "2s",
			"-redis", redis.Addr.String() + ":6379", "-redis-pid", fmt.Sprint(redis.PID()), "-baseline", "3s"}
		args = append(args, strings.Fields(os.Getenv("DSMBENCH_ARGS"))...)
		cmd := exec.Command(bench, args...)
		report, err := cmd.CombinedOutput()
		b.Logf("nginx with %d gateway(s):\n%s", n, report)
		if err != nil {
			b.Fatalf("dsmbench: %v", err)
		}
		var res struct {
			Raw    float64 `json:"raw_commits_per_sec"`
			Phases []struct {
				AckedPerSec float64            `json:"acked_per_sec"`
				CPU         map[string]float64 `json:"cpu_cores"`
				Machine     float64            `json:"machine_cpu_cores"`
			} `json:"phases"`
		}
		jb, err := os.ReadFile(out)
		if err != nil || json.Unmarshal(jb, &res) != nil || len(res.Phases) != 2 {
			b.Fatalf("dsmbench figures: %v", err)
		}
		b.ReportMetric(res.Phases[0].AckedPerSec, fmt.Sprintf("ops/s-nginx-%dgw", n))
		b.ReportMetric(res.Phases[1].AckedPerSec, fmt.Sprintf("ops/s-direct-%dgw", n))
	}
}
