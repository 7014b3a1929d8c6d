package topology

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// TestComposeFile checks what docker-compose.yml promises a user beyond what TestTopology
// runs: things only Docker itself would exercise (publishing UDP ranges, building an
// image once, the variables) or that a run would not notice missing.
func TestComposeFile(t *testing.T) {
	file, err := findComposeFile()
	if err != nil {
		t.Fatal(err)
	}
	const net, host = "10.1.2", "phone.example.test"
	p, err := loadProject(context.Background(), file, map[string]string{VarNet: net, VarPublicHost: host})
	if err != nil {
		t.Fatal(err)
	}
	names := slices.Sorted(maps.Keys(p.Services))

	t.Run("healthchecks and healthy dependencies", func(t *testing.T) {
		for _, name := range names {
			s := p.Services[name]
			if hc := s.HealthCheck; hc == nil || hc.Disable || len(hc.Test) == 0 || hc.Test[0] == "NONE" {
				t.Errorf("%s has no healthcheck", name)
			}
			for dep, d := range s.DependsOn {
				if d.Condition != types.ServiceConditionHealthy {
					t.Errorf("%s depends on %s with condition %q, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
				}
			}
		}
	})

	t.Run("each image built once", func(t *testing.T) {
		builders := map[string][]string{}
		for _, name := range names {
			if s := p.Services[name]; s.Build != nil {
				builders[s.Image] = append(builders[s.Image], name)
			}
		}
		for img, by := range builders {
			if img != "" && len(by) > 1 {
				t.Errorf("image %s is built by %v: build it in one service and name it in the others", img, by)
			}
		}
	})

	t.Run("subnet and addresses from DSMGW_NET", func(t *testing.T) {
		subnet := netip.MustParsePrefix(net + ".0/24")
		if _, err := planServices(p, subnet); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("gateways publish their RTP range and their own media URL", func(t *testing.T) {
		gateways := 0
		for _, name := range names {
			s := p.Services[name]
			lo, hi := envInt(t, s, "MGW_PORT_MIN"), envInt(t, s, "MGW_PORT_MAX")
			if lo == 0 && hi == 0 {
				continue
			}
			gateways++
			udp := published(s, "udp")
			for port := lo; port <= hi; port++ {
				if udp[port] != port {
					t.Errorf("%s: RTP port %d (MGW_PORT_MIN..MAX %d-%d) not published as %d/udp", name, port, lo, hi, port)
					break
				}
			}
			want := fmt.Sprintf("ws://%s:%d", host, published(s, "tcp")[8080])
			if got := env(s, "MGW_PUBLIC_WS_URL"); got != want {
				t.Errorf("%s: MGW_PUBLIC_WS_URL %q, want %q (DSMGW_PUBLIC_HOST and its published HTTP port)", name, got, want)
			}
		}
		if gateways < 2 {
			t.Errorf("%d gateways with an RTP range, want at least 2", gateways)
		}
	})

	t.Run("SIP published for a softphone", func(t *testing.T) {
		for _, name := range names {
			s := p.Services[name]
			if published(s, "udp")[5060] == 5060 && published(s, "tcp")[5060] == 5060 {
				return
			}
		}
		t.Error("no service publishes 5060/udp and 5060/tcp")
	})

	t.Run("Redis keeps the DSM and notifies keyspace events by itself", func(t *testing.T) {
		cmd := strings.Join(p.Services["redis"].Command, " ")
		for _, want := range []string{"--appendonly yes", "--notify-keyspace-events"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("redis command %q lacks %s", cmd, want)
			}
		}
		if i := strings.Index(cmd, "--notify-keyspace-events "); i >= 0 {
			flags := strings.Fields(cmd[i:])[1]
			for _, f := range "Khg" {
				if !strings.ContainsRune(flags, f) && !(f != 'K' && strings.ContainsRune(flags, 'A')) {
					t.Errorf("notify-keyspace-events %q lacks %c (the gateways need Khg)", flags, f)
				}
			}
		}
	})
}

func env(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

func envInt(t *testing.T, s types.ServiceConfig, k string) int {
	v := env(s, k)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s: %s=%q: %v", s.Name, k, v, err)
	}
	return n
}

// published maps a service's target ports of a protocol to the host ports they are
// published on.
func published(s types.ServiceConfig, proto string) map[int]int {
	m := map[int]int{}
	for _, p := range s.Ports {
		if cmpOr(p.Protocol, "tcp") != proto {
			continue
		}
		if n, err := strconv.Atoi(p.Published); err == nil {
			m[int(p.Target)] = n
		}
	}
	return m
}
