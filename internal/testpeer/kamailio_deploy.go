package testpeer

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// DeployKamailioOptions configures StartDeployKamailio.
type DeployKamailioOptions struct {
	// ConfServer is the SIP URI of the conference server the CSCF relays conference
	// rooms and the echo service to (the config's CONF_SERVER), e.g. "sip:127.0.0.1:5090".
	ConfServer string
	// ConfDomain overrides the conference domain (CONF_DOMAIN); "" keeps the config's.
	ConfDomain string
}

// StartDeployKamailio starts Kamailio with the configuration that docker compose and
// cmd/devstack run (deploy/kamailio.cfg: a registrar for sip.dsmgw.test without
// authentication, relaying conference rooms to the conference server), on a free port
// of 127.0.0.1 for UDP and TCP. Tests of what the demo stacks do use it, so the shipped
// routing is what they check.
func StartDeployKamailio(t testing.TB, opts DeployKamailioOptions) *Kamailio {
	t.Helper()
	bin := Need(t, "kamailio")
	cfg, err := deployFile("deploy/kamailio.cfg")
	if err != nil {
		t.Fatalf("testpeer: %v", err)
	}
	dir := t.TempDir()
	port, child, logf := startListening(t, "kamailio-deploy", FreeUDPPort, func(port int) *exec.Cmd {
		run := filepath.Join(dir, strconv.Itoa(port))
		if err := os.MkdirAll(run, 0o700); err != nil {
			t.Fatalf("testpeer: kamailio runtime dir: %v", err)
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		args := []string{"-DD", "-E", "-f", cfg, "-Y", run, "-m", "32", "-M", "8",
			"-P", filepath.Join(run, "kamailio.pid"), "-l", "udp:" + addr, "-l", "tcp:" + addr,
			// Its control socket in the runtime dir: the config's default TCP port would
			// be shared by every Kamailio a parallel test starts.
			"-A", `CTL_ADDR="unix:` + filepath.Join(run, "ctl.sock") + `"`}
		if opts.ConfServer != "" {
			args = append(args, "-A", `CONF_SERVER="`+opts.ConfServer+`"`)
		}
		if opts.ConfDomain != "" {
			args = append(args, "-A", `CONF_DOMAIN="`+opts.ConfDomain+`"`)
		}
		cmd := exec.Command(bin, args...)
		cmd.Dir = run
		return cmd
	}, 15*time.Second)
	return &Kamailio{Addr: "127.0.0.1:" + strconv.Itoa(port), Port: port, PID: child.PID(), Log: logf}
}

// deployFile finds a file of the checkout by walking up from the working directory (a
// test runs in its package's directory) to the module root.
func deployFile(rel string) (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			p := filepath.Join(d, filepath.FromSlash(rel))
			if _, err := os.Stat(p); err != nil {
				return "", err
			}
			return p, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("no go.mod above the working directory")
		}
		d = parent
	}
}
