package testpeer

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

//go:embed testdata/kamailio.cfg
var kamailioCfg string

// KamailioPassword is the digest password of every user of the test CSCF (REGISTER and
// the gateway's own INVITEs are challenged with it).
const KamailioPassword = "secret"

// kamailioModules is where Debian installs kamailio's modules.
const kamailioModules = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"

// Kamailio is a running test CSCF: a registrar and stateful proxy on UDP and TCP.
type Kamailio struct {
	Addr string // "127.0.0.1:<port>", the same port on UDP and TCP
	Port int
	PID  int
}

// URI returns the proxy's SIP URI on a transport ("udp" or "tcp").
func (k *Kamailio) URI(transport string) string {
	return "sip:" + k.Addr + ";transport=" + transport
}

// StartKamailio starts kamailio in the foreground (-DD -E) with the project's test
// configuration (testdata/kamailio.cfg) on a free port, small shared and private memory
// (-m/-M, in MB: a test proxy holds a handful of transactions), its runtime files in a
// temporary directory (-Y), and waits until it accepts TCP connections.
func StartKamailio(t testing.TB) *Kamailio {
	t.Helper()
	bin := Need(t, "kamailio")
	dir := t.TempDir()
	port, child := startListening(t, "kamailio", FreeUDPPort, func(port int) *exec.Cmd {
		cfg := strings.NewReplacer("%PORT%", strconv.Itoa(port), "%PASSWORD%", KamailioPassword,
			"%MPATH%", kamailioModules).Replace(kamailioCfg)
		path := filepath.Join(dir, "kamailio-"+strconv.Itoa(port)+".cfg")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatalf("testpeer: kamailio config: %v", err)
		}
		run := filepath.Join(dir, strconv.Itoa(port))
		if err := os.MkdirAll(run, 0o700); err != nil {
			t.Fatalf("testpeer: kamailio runtime dir: %v", err)
		}
		cmd := exec.Command(bin, "-DD", "-E", "-f", path, "-Y", run, "-m", "32", "-M", "8",
			"-P", filepath.Join(run, "kamailio.pid"))
		cmd.Dir = run
		return cmd
	}, 15*time.Second)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return &Kamailio{Addr: addr, Port: port, PID: child.PID()}
}
