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
	// Log is the file of its output, which holds every INVITE and BYE it received (see
	// Trace).
	Log string
}

// KamailioOptions configures the test CSCF of StartKamailioWith.
type KamailioOptions struct {
	// ChallengeFrom is a source address ("127.0.0.1:5070") whose INVITEs and BYEs are
	// challenged with 407 whatever their From (the gateway's UDP listener, so that its
	// users' calls are challenged too); "" challenges only From user "dsmgw".
	ChallengeFrom string
	// ConfDomain and ConfServer route requests for a conference domain to a conference
	// server ("conf.test", "sip:127.0.0.1:5090"); empty: no such route.
	ConfDomain, ConfServer string
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
	return StartKamailioWith(t, KamailioOptions{})
}

// StartKamailioWith is StartKamailio with options.
func StartKamailioWith(t testing.TB, opts KamailioOptions) *Kamailio {
	t.Helper()
	bin := Need(t, "kamailio")
	dir := t.TempDir()
	if opts.ChallengeFrom == "" {
		opts.ChallengeFrom = "none"
	}
	if opts.ConfDomain == "" || opts.ConfServer == "" {
		opts.ConfDomain, opts.ConfServer = "conf.invalid", "sip:127.0.0.1:9"
	}
	port, child, logf := startListening(t, "kamailio", FreeUDPPort, func(port int) *exec.Cmd {
		cfg := strings.NewReplacer("%PORT%", strconv.Itoa(port), "%PASSWORD%", KamailioPassword,
			"%MPATH%", kamailioModules, "%CHALLENGE_FROM%", opts.ChallengeFrom,
			"%CONF_DOMAIN%", opts.ConfDomain, "%CONF_SERVER%", opts.ConfServer).Replace(kamailioCfg)
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
	return &Kamailio{Addr: addr, Port: port, PID: child.PID(), Log: logf}
}

// Trace returns the requests the test CSCF logged as received (every INVITE and BYE, see
// testdata/kamailio.cfg), oldest first: the first line of each is "<source ip:port>", the
// rest the message as it arrived.
func (k *Kamailio) Trace(t testing.TB) []string {
	t.Helper()
	b, err := os.ReadFile(k.Log)
	if err != nil {
		t.Fatalf("testpeer: kamailio log: %v", err)
	}
	var out []string
	for _, part := range strings.Split(string(b), "TRACE ")[1:] {
		msg, _, ok := strings.Cut(part, "END TRACE")
		if !ok {
			continue // being written
		}
		out = append(out, strings.ReplaceAll(strings.TrimSpace(msg), "\r\n", "\n"))
	}
	return out
}
