package topology

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// Variables of docker-compose.yml that a run sets, so that runs never collide.
const (
	// VarNet is the first three octets of the compose network's /24.
	VarNet = "DSMGW_NET"
	// VarPublicHost is the host name or address browsers reach published ports at.
	VarPublicHost = "DSMGW_PUBLIC_HOST"
	// VarCallLease is the gateways' call lease (SIP_CALL_LEASE).
	VarCallLease = "DSMGW_CALL_LEASE"
)

// loadProject reads a compose file, and the files that override it in order, the way
// Docker Compose does (interpolation with env only, anchors and merges, extends,
// validation against the compose specification, relative paths resolved against the first
// file's folder). Every profile is enabled, so that the services of a profile are planned
// (an address, a name in every namespace's hosts file) even if Up does not start them.
func loadProject(ctx context.Context, file string, env map[string]string, overrides ...string) (*types.Project, error) {
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	o, err := cli.NewProjectOptions(append([]string{file}, overrides...),
		cli.WithWorkingDirectory(filepath.Dir(file)),
		cli.WithName("dsmgw"),
		cli.WithEnv(kv),
		cli.WithResolvedPaths(true),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, fmt.Errorf("compose options: %w", err)
	}
	p, err := o.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s %v: %w", file, overrides, err)
	}
	return p, nil
}

// plan is one service of the project, resolved for running here.
type plan struct {
	svc      types.ServiceConfig
	network  string
	addr     netip.Addr
	ifname   string
	names    []string // how other services reach it (service name, hostname, aliases)
	imageKey string
	image    image
	docker   *dockerfile // nil for pulled images
	context  string      // build context folder, for COPY sources
}

// planServices resolves each service's network, address, names and image against the
// mapping table. Services without a static address get the next free one from the
// subnet's start, as Docker's address manager does.
func planServices(p *types.Project, subnet netip.Prefix) (map[string]*plan, error) {
	if len(p.Networks) != 1 {
		return nil, fmt.Errorf("the topology runs one network; the compose file has %d", len(p.Networks))
	}
	var netName string
	for name, n := range p.Networks {
		netName = name
		if len(n.Ipam.Config) != 1 || n.Ipam.Config[0].Subnet != subnet.String() {
			var got []string
			for _, c := range n.Ipam.Config {
				got = append(got, c.Subnet)
			}
			return nil, fmt.Errorf("network %s: subnet %v, want %s: the subnet must come from ${%s} so that runs and stacks do not collide",
				name, got, subnet, VarNet)
		}
	}
	used := map[netip.Addr]bool{subnet.Addr(): true, subnet.Addr().Next(): true}
	plans := map[string]*plan{}
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		s := p.Services[name]
		if s.NetworkMode != "" {
			return nil, fmt.Errorf("service %s: network_mode %q is not run here", name, s.NetworkMode)
		}
		nc, ok := s.Networks[netName]
		if !ok || len(s.Networks) != 1 {
			return nil, fmt.Errorf("service %s: must be on network %s only (it is on %v)", name, netName, slices.Collect(maps.Keys(s.Networks)))
		}
		pl := &plan{svc: s, network: netName, ifname: "eth0", names: []string{name}}
		if s.Hostname != "" && s.Hostname != name {
			pl.names = append(pl.names, s.Hostname)
		}
		if s.ContainerName != "" {
			pl.names = append(pl.names, s.ContainerName)
		}
		if nc != nil {
			pl.names = append(pl.names, nc.Aliases...)
			if nc.InterfaceName != "" {
				pl.ifname = nc.InterfaceName
			}
			if nc.Ipv4Address != "" {
				a, err := netip.ParseAddr(nc.Ipv4Address)
				if err != nil || !subnet.Contains(a) || used[a] {
					return nil, fmt.Errorf("service %s: ipv4_address %q is not a free address of %s", name, nc.Ipv4Address, subnet)
				}
				pl.addr = a
				used[a] = true
			}
		}
		if err := pl.resolveImage(p); err != nil {
			return nil, fmt.Errorf("service %s: %w", name, err)
		}
		plans[name] = pl
	}
	next := subnet.Addr().Next().Next()
	for _, name := range slices.Sorted(maps.Keys(plans)) {
		pl := plans[name]
		if pl.addr.IsValid() {
			continue
		}
		for used[next] {
			next = next.Next()
		}
		if !subnet.Contains(next) {
			return nil, fmt.Errorf("subnet %s is full", subnet)
		}
		pl.addr = next
		used[next] = true
	}
	return plans, nil
}

// resolveImage finds the service's row of the mapping table: by its Dockerfile when it
// is built (or when another service builds the image it names), else by the image's
// repository name.
func (pl *plan) resolveImage(p *types.Project) error {
	b := pl.svc.Build
	if b == nil && pl.svc.Image != "" {
		for _, o := range p.Services {
			if o.Build != nil && o.Image == pl.svc.Image {
				b = o.Build
				break
			}
		}
	}
	if b != nil {
		df := b.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(b.Context, df)
		}
		key, err := filepath.Rel(p.WorkingDir, df)
		if err != nil {
			return fmt.Errorf("dockerfile %s: %w", df, err)
		}
		im, ok := images[key]
		if !ok {
			return fmt.Errorf("no row for the image built from %s in the mapping table (mapping.go)", key)
		}
		f, err := os.Open(df)
		if err != nil {
			return fmt.Errorf("dockerfile: %w", err)
		}
		defer f.Close()
		d, err := parseDockerfile(f)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		pl.imageKey, pl.image, pl.docker, pl.context = key, im, d, b.Context
		if len(d.fromStage) > 0 && im.goCmds == "" {
			return fmt.Errorf("%s copies files from a build stage; its row in mapping.go must say how to build them", key)
		}
		return nil
	}
	key := repoName(pl.svc.Image)
	im, ok := images[key]
	if !ok {
		return fmt.Errorf("no row for image %q in the mapping table (mapping.go)", pl.svc.Image)
	}
	pl.imageKey, pl.image = key, im
	return nil
}

// repoName returns an image reference's repository name without registry, namespace of
// official images, tag or digest: "docker.io/library/redis:7" → "redis".
func repoName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	for _, p := range []string{"docker.io/", "index.docker.io/", "library/"} {
		ref = strings.TrimPrefix(ref, p)
	}
	return ref
}

// hostsFile is the /etc/hosts of every namespace: loopback and every service's names.
func hostsFile(plans map[string]*plan) []byte {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, name := range slices.Sorted(maps.Keys(plans)) {
		pl := plans[name]
		fmt.Fprintf(&b, "%s\t%s\n", pl.addr, strings.Join(pl.names, " "))
	}
	return []byte(b.String())
}
