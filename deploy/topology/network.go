package topology

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// namePrefix starts the name of everything a run creates on the machine (bridge,
// namespaces, veth links, /etc/netns folders), followed by the run's id, so a person
// can tell them from the machine's own and delete a crashed run's leftovers by hand.
const namePrefix = "dsmgw"

// netnsEtc is where ip-netns(8) looks for per-namespace files: `ip netns exec` mounts
// /etc/netns/<ns>/hosts over /etc/hosts for the command it runs.
const netnsEtc = "/etc/netns"

// Network is the private network of one run: a bridge in the host namespace holding the
// subnet's first address (the gateway address Docker gives a bridge network), and one
// network namespace per service plugged into it by a veth pair. The host namespace is the
// network namespace of the process that runs the stack, the Docker host's; this package's
// tests run in one of their own (main_test.go), so that nothing they make or cut is a
// change of the machine's network.
type Network struct {
	// ID names the run: four hex digits, the subnet's two middle octets.
	ID string
	// Subnet is the compose network's /24, 10.A.B.0/24.
	Subnet netip.Prefix
	// Gateway is the bridge's address, the host namespace's address on the network.
	Gateway netip.Addr
	// Bridge is the bridge's link name.
	Bridge string

	links int // veth pairs made so far, for their names
}

// pickAttempts bounds the search for a free subnet: the space holds 32,768 /24s, so a
// collision with another run or a leftover is rare and a second draw nearly always wins.
const pickAttempts = 20

// newNetwork picks a subnet no route of the machine overlaps and no other run holds, and
// creates its bridge. Creating the bridge claims the run's id: a run that drew the same
// id fails to create a link of the same name and draws again. The bridge is deleted when
// the test ends.
func newNetwork(t testing.TB) *Network {
	t.Helper()
	routes, err := ipOut("-4", "route", "show", "table", "all")
	if err != nil {
		t.Fatalf("topology: %v", err)
	}
	var lastErr error
	for range pickAttempts {
		var b [2]byte
		_, _ = rand.Read(b[:])
		b[0] |= 0x80 // 10.128.0.0/9: clear of the 10.0.x and 10.89.x networks people use most
		n := &Network{ID: fmt.Sprintf("%02x%02x", b[0], b[1])}
		n.Subnet = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, b[0], b[1], 0}), 24)
		n.Gateway = n.Subnet.Addr().Next()
		n.Bridge = namePrefix + n.ID
		if overlaps(routes, n.Subnet) || holdsNameserver(n.Subnet) || leftover(n.ID) {
			continue
		}
		if err := ip("link", "add", n.Bridge, "type", "bridge"); err != nil {
			lastErr = err // another run holds this id
			continue
		}
		t.Cleanup(func() {
			if err := ip("link", "del", n.Bridge); err != nil {
				t.Errorf("topology: cleanup: %v", err)
			}
		})
		if err := ip("addr", "add", n.Gateway.String()+"/24", "dev", n.Bridge); err != nil {
			t.Fatalf("topology: %v", err)
		}
		if err := ip("link", "set", n.Bridge, "up"); err != nil {
			t.Fatalf("topology: %v", err)
		}
		return n
	}
	t.Fatalf("topology: no free subnet in 10.128.0.0/9 after %d draws (last: %v)", pickAttempts, lastErr)
	return nil
}

// overlaps reports whether a route of `ip route show` output covers any of p.
func overlaps(routes string, p netip.Prefix) bool {
	for line := range strings.Lines(routes) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		dst := f[0]
		if dst == "default" || dst == "local" || dst == "broadcast" || dst == "unreachable" || dst == "blackhole" {
			if len(f) < 2 || dst == "default" {
				continue
			}
			dst = f[1]
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		q, err := netip.ParsePrefix(dst)
		if err == nil && q.Overlaps(p) {
			return true
		}
	}
	return false
}

// holdsNameserver reports whether p holds a name server of this machine: a bridge on its
// subnet would take the machine's DNS traffic.
func holdsNameserver(p netip.Prefix) bool {
	b, _ := os.ReadFile("/etc/resolv.conf")
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// resolvConf is every namespace's /etc/resolv.conf. Docker's DNS answers the names of
// the compose file and forwards others; here /etc/hosts holds the compose file's names
// and the name server is the namespace's own loopback, where nothing listens: any other
// name fails at once (the machine's name server is not reachable from the bridge, and
// asking it would time out after seconds: baresip took 10 s to register).
const resolvConf = "nameserver 127.0.0.1\n"

// leftover reports whether a namespace or /etc/netns folder of run id exists: a run that
// was killed before its cleanup leaves them behind.
func leftover(id string) bool {
	for _, dir := range []string{"/run/netns", netnsEtc} {
		m, _ := filepath.Glob(filepath.Join(dir, namePrefix+id+"-*"))
		if len(m) > 0 {
			return true
		}
	}
	return false
}

// Namespace creates the network namespace of one service: a veth pair whose inner end
// is named ifname (Docker names it eth0) with addr on the subnet, a default route through
// the bridge, loopback up, /etc/netns/<ns>/hosts with the given content and
// /etc/netns/<ns>/resolv.conf. Everything
// is deleted when the test ends. It returns the namespace's name and the veth end on the
// bridge (setting it down cuts the service off, as pulling its cable would).
func (n *Network) Namespace(t testing.TB, service, ifname string, addr netip.Addr, hosts []byte) (ns, link string) {
	t.Helper()
	ns = namePrefix + n.ID + "-" + service
	if err := ip("netns", "add", ns); err != nil {
		t.Fatalf("topology: %v", err)
	}
	t.Cleanup(func() {
		// Deleting the namespace destroys the veth end inside it, and so the pair.
		if err := ip("netns", "del", ns); err != nil {
			t.Errorf("topology: cleanup: %v", err)
		}
	})
	etc := filepath.Join(netnsEtc, ns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatalf("topology: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(etc); err != nil {
			t.Errorf("topology: cleanup: %v", err)
		}
	})
	for name, b := range map[string][]byte{"hosts": hosts, "resolv.conf": []byte(resolvConf)} {
		if err := os.WriteFile(filepath.Join(etc, name), b, 0o644); err != nil {
			t.Fatalf("topology: %v", err)
		}
	}
	n.links++
	host := fmt.Sprintf("%s%sv%d", namePrefix, n.ID, n.links)
	steps := [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", ifname, "netns", ns},
		{"link", "set", host, "master", n.Bridge},
		{"link", "set", host, "up"},
		{"-n", ns, "addr", "add", addr.String() + "/24", "dev", ifname},
		{"-n", ns, "link", "set", ifname, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "route", "add", "default", "via", n.Gateway.String()},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatalf("topology: namespace %s: %v", ns, err)
		}
	}
	return ns, host
}

// ip runs ip(8) with args.
func ip(args ...string) error {
	_, err := ipOut(args...)
	return err
}

// ipOut runs ip(8) with args and returns its output; the error quotes the command and
// what it printed.
func ipOut(args ...string) (string, error) {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("ip %s: %s", strings.Join(args, " "), bytes.TrimSpace(out.Bytes()))
		}
		return "", fmt.Errorf("ip %s: %w (iproute2 installed? .ci/run installs it)", strings.Join(args, " "), err)
	}
	return out.String(), nil
}
