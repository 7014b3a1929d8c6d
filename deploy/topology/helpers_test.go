package topology

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

func TestRewrite(t *testing.T) {
	r := &root{dir: "/r"}
	r.add("/etc/dsmgw", "/r/etc/dsmgw")
	r.add("/etc/dsmgw/baresip/config", "/repo/config")
	r.add("/usr/local/bin/gateway", "/bin/gw")
	tests := map[string]string{
		"/usr/local/bin/gateway":                       "/bin/gw",
		"-f /etc/dsmgw/kamailio.cfg -m 64":             "-f /r/etc/dsmgw/kamailio.cfg -m 64",
		`sed -i "s/a/b/" /etc/dsmgw/baresip/config &&`: `sed -i "s/a/b/" /repo/config &&`,
		"/opt/etc/dsmgw/x":                             "/opt/etc/dsmgw/x", // not at a boundary
		"/etc/dsmgwx":                                  "/etc/dsmgwx",
		"--dir=/etc/dsmgw":                             "--dir=/r/etc/dsmgw",
		"/usr/local/bin/gateway2":                      "/usr/local/bin/gateway2",
	}
	for in, want := range tests {
		if got := r.rewrite(in); got != want {
			t.Errorf("rewrite(%q) = %q, want %q", in, got, want)
		}
	}
	if got := r.resolve("/etc/dsmgw/baresip"); got != "/r/etc/dsmgw/baresip" {
		t.Errorf("resolve: %q", got)
	}
	if got := r.resolve("/data"); got != "/r/data" {
		t.Errorf("resolve: %q", got)
	}
	// A volume mounted over a folder the image copied in hides the image's files.
	r.add("/etc/dsmgw/baresip", "/r/etc/dsmgw/baresip")
	r.add("/etc/dsmgw/baresip", "/test/bob")
	if got := r.rewrite("-f /etc/dsmgw/baresip"); got != "-f /test/bob" {
		t.Errorf("volume over a copied folder: %q", got)
	}
	if got := r.resolve("/etc/dsmgw/baresip/accounts"); got != "/test/bob/accounts" {
		t.Errorf("volume over a copied folder: resolve %q", got)
	}
}

func TestCommandNames(t *testing.T) {
	got := commandNames("/usr/local/bin",
		[]string{"/usr/local/bin/gateway"},
		[]string{"sh", "-c", "/usr/local/bin/imsdemo -x && /usr/local/bin/gateway"},
		nil)
	if want := []string{"gateway", "imsdemo"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestRepoName(t *testing.T) {
	for in, want := range map[string]string{
		"redis:7": "redis", "nginx:1.27": "nginx", "docker.io/library/redis:7": "redis",
		"localhost:5000/team/app:v1": "localhost:5000/team/app", "nginx@sha256:abc": "nginx",
		"dsmgw-gateway:local": "dsmgw-gateway",
	} {
		if got := repoName(in); got != want {
			t.Errorf("repoName(%q) = %q, want %q", in, got, want)
		}
	}
}

const routes = `default via 192.0.2.1 dev eth0
192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2
10.200.0.0/16 via 192.0.2.9 dev eth0
local 10.128.5.7 dev lo table local proto kernel scope host src 10.128.5.7
broadcast 127.255.255.255 dev lo table local proto kernel scope link src 127.0.0.1
`

func TestOverlaps(t *testing.T) {
	for in, want := range map[string]bool{
		"10.200.7.0/24": true, "10.128.5.0/24": true, "10.201.0.0/24": false, "192.0.2.0/24": true,
	} {
		if got := overlaps(routes, netip.MustParsePrefix(in)); got != want {
			t.Errorf("overlaps(%s) = %v, want %v", in, got, want)
		}
	}
}

func FuzzOverlaps(f *testing.F) {
	f.Add(routes)
	f.Add("unreachable\nblackhole 10.0.0.0/8\n10.1.2.3 dev x\n")
	f.Fuzz(func(t *testing.T, in string) {
		_ = overlaps(in, netip.MustParsePrefix("10.128.1.0/24"))
	})
}

func TestStartOrder(t *testing.T) {
	dep := func(names ...string) types.DependsOnConfig {
		d := types.DependsOnConfig{}
		for _, n := range names {
			d[n] = types.ServiceDependency{Condition: types.ServiceConditionHealthy}
		}
		return d
	}
	svc := func(deps ...string) types.ServiceConfig {
		var s types.ServiceConfig
		s.DependsOn = dep(deps...)
		return s
	}
	p := &types.Project{Services: types.Services{
		"lb": svc("gw1", "gw2"), "gw1": svc("redis", "sip"), "gw2": svc("redis", "sip"), "redis": svc(), "sip": svc(),
	}}
	order, err := startOrder(p)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	for name, s := range p.Services {
		for d := range s.DependsOn {
			if pos[d] > pos[name] {
				t.Errorf("%s starts before its dependency %s: %v", name, d, order)
			}
		}
	}
	p.Services["redis"] = svc("lb")
	if _, err := startOrder(p); err == nil {
		t.Fatal("a cycle was not refused")
	}
}
