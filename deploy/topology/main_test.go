package topology

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
)

// privateNetEnv marks the copy of the test binary that runs in the private network
// namespace.
const privateNetEnv = "DSMGW_TOPOLOGY_PRIVATE_NET"

// TestMain runs the package's tests in a network namespace of their own, started for
// this run and gone with it. The bridge, veth pairs, addresses and cut links the tests
// make would otherwise be changes of the machine's own network, and every Chromium of
// another package's tests running at the same time takes an address change for a
// network change and fails the requests it has in flight (ERR_NETWORK_CHANGED: a page
// whose module failed to load never started). Inside, everything is as before: the
// service namespaces hang off a bridge in this namespace, the forwarders of published
// ports listen on its loopback, and the tests' own browsers run here too.
func TestMain(m *testing.M) {
	if os.Getenv(privateNetEnv) == "" {
		os.Exit(inPrivateNet())
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "topology: loopback up in the private network namespace: %v: %s\n", err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// inPrivateNet runs this test binary again, with the same arguments, in a new network
// namespace, and returns its exit code. The copy's own -test.timeout applies (this
// process never starts the tests, so it has no timer of its own); signals that would end
// this process are passed on, so the copy's cleanups (namespaces, /etc/netns) run.
func inPrivateNet() int {
	cmd := exec.Command(os.Args[0], os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), privateNetEnv+"=1")
	// The copy dies with this process even when it is killed; Pdeathsig follows the
	// thread that started the copy, so that thread must stay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "topology: start the tests in a private network namespace (needs root): %v\n", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = cmd.Process.Signal(s)
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				return exit.ExitCode()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "topology: tests in the private network namespace: %v\n", err)
				return 1
			}
			return 0
		}
	}
}
