package topology

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sipPacket is one SIP message seen on the CSCF's interface.
type sipPacket struct {
	At       time.Time
	Src, Dst string
	Method   string // "" for a response
	Status   int    // 0 for a request
	CallID   string
	CSeq     string // the CSeq method
	ToTag    string // "" for a request outside a dialog
	ToUser   string // the user part of the To URI (the user called, for an INVITE)
}

// errBadTraceLine is what parseTraceLine returns for a line that is not one of ours.
var errBadTraceLine = errors.New("not a trace line")

// traceFields are the tshark fields of a trace line, in order.
var traceFields = []string{"frame.time_epoch", "ip.src", "ip.dst", "sip.Method", "sip.Status-Code",
	"sip.Call-ID", "sip.CSeq.method", "sip.to.tag", "sip.to.user"}

// parseTraceLine reads one line of `tshark -T fields` with traceFields (tab-separated).
func parseTraceLine(line string) (sipPacket, error) {
	f := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
	if len(f) != len(traceFields) {
		return sipPacket{}, fmt.Errorf("%w: %d fields: %q", errBadTraceLine, len(f), line)
	}
	sec, frac, _ := strings.Cut(f[0], ".")
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil || s < 0 {
		return sipPacket{}, fmt.Errorf("%w: time %q", errBadTraceLine, f[0])
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil || ns < 0 {
			return sipPacket{}, fmt.Errorf("%w: time %q", errBadTraceLine, f[0])
		}
	}
	p := sipPacket{At: time.Unix(s, ns), Src: f[1], Dst: f[2], Method: f[3], CallID: f[5], CSeq: f[6], ToTag: f[7], ToUser: f[8]}
	if f[4] != "" {
		if p.Status, err = strconv.Atoi(f[4]); err != nil || p.Status < 100 || p.Status > 699 {
			return sipPacket{}, fmt.Errorf("%w: status %q", errBadTraceLine, f[4])
		}
	}
	if (p.Method == "") == (p.Status == 0) || p.CallID == "" {
		return sipPacket{}, fmt.Errorf("%w: neither one request nor one response: %q", errBadTraceLine, line)
	}
	return p, nil
}

// sipTrace captures every SIP message on a service's interface with tshark, in the
// service's namespace (on the CSCF's, it sees both legs of everything it relays).
type sipTrace struct {
	mu   sync.Mutex
	pkts []sipPacket
	bad  []string
	done chan struct{}
}

// traceSIP starts tshark in sv's namespace on its interface; the capture stops when the
// test ends. It returns once tshark captures.
func traceSIP(t *testing.T, sv *Service) *sipTrace {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		t.Fatalf("tshark not installed (.ci/run installs it): %v", err)
	}
	args := []string{"netns", "exec", sv.NS, bin, "-i", sv.plan.ifname, "-l", "-n",
		"-f", "port 5060", "-Y", "sip", "-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"}
	for _, f := range traceFields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=/usr/bin:/bin:/usr/sbin:/sbin"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("tshark: %v", err)
	}
	tr := &sipTrace{done: make(chan struct{})}
	capturing := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Capturing on") {
				once.Do(func() { close(capturing) })
			}
		}
	}()
	go func() {
		defer close(tr.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p, err := parseTraceLine(sc.Text())
			tr.mu.Lock()
			if err != nil {
				tr.bad = append(tr.bad, sc.Text())
			} else {
				tr.pkts = append(tr.pkts, p)
			}
			tr.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		<-tr.done
	})
	select {
	case <-capturing:
	case <-time.After(30 * time.Second):
		t.Fatal("tshark did not start capturing")
	}
	return tr
}

// waitFor polls the capture until cond holds on it (tshark prints a packet a moment
// after it crossed the wire); d is a failure deadline.
func (tr *sipTrace) waitFor(t *testing.T, what string, d time.Duration, cond func([]sipPacket) bool) []sipPacket {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		pkts := tr.packets()
		if cond(pkts) {
			return pkts
		}
		if time.Now().After(deadline) {
			t.Fatalf("SIP trace: %s: not within %s (%d packets captured)", what, d, len(pkts))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// packets returns what was captured so far.
func (tr *sipTrace) packets() []sipPacket {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]sipPacket(nil), tr.pkts...)
}

// checkOneDriver fails the test for every dialog that two instances drove at once: a
// dialog passes from an instance that lost it to the one that took it over (its
// re-INVITE, then its BYE), but never back, and two instances never take turns.
func checkOneDriver(t *testing.T, tr *sipTrace, gateways map[string]string) {
	t.Helper()
	for callID, by := range dialogDriverTurns(tr.packets(), gateways) {
		seen := map[string]bool{}
		for _, name := range by {
			if seen[name] {
				t.Errorf("dialog %s driven by instances in turns (BYE, re-INVITE or UPDATE from each): %v", callID, by)
				break
			}
			seen[name] = true
		}
	}
}

// dialogDriverTurns returns, for each Call-ID, the instances that drove it in the order
// they took turns (a name repeats only if the dialog went back to it).
func dialogDriverTurns(pkts []sipPacket, among map[string]string) map[string][]string {
	out := map[string][]string{}
	for _, p := range pkts {
		name, ok := among[p.Src]
		if !ok || !(p.Method == "BYE" || (p.Method == "INVITE" && p.ToTag != "") || p.Method == "UPDATE") {
			continue
		}
		if turns := out[p.CallID]; len(turns) == 0 || turns[len(turns)-1] != name {
			out[p.CallID] = append(turns, name)
		}
	}
	return out
}

// byeFrom returns when each gateway first sent a BYE for callID (by name).
func byeFrom(pkts []sipPacket, callID string, among map[string]string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, p := range pkts {
		if name, ok := among[p.Src]; ok && p.Method == "BYE" && p.CallID == callID {
			if _, seen := out[name]; !seen {
				out[name] = p.At
			}
		}
	}
	return out
}

func TestParseTraceLine(t *testing.T) {
	p, err := parseTraceLine("1795668794.331930514\t10.1.2.11\t10.1.2.20\tBYE\t\tabc@d\tBYE\t2\tu1")
	if err != nil || p.Method != "BYE" || p.Src != "10.1.2.11" || p.CallID != "abc@d" || p.ToTag != "2" || p.ToUser != "u1" ||
		p.At.UnixNano() != 1795668794331930514 {
		t.Fatalf("%+v %v", p, err)
	}
	p, err = parseTraceLine("1.5\t10.1.2.20\t10.1.2.11\t\t200\tabc@d\tBYE\t2\t")
	if err != nil || p.Status != 200 || p.At.UnixNano() != 1_500_000_000 {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"", "x", "1\t2", "1\ta\tb\tBYE\t200\tc\tBYE\t\t", "1\ta\tb\t\t\tc\tBYE\t\t", "1\ta\tb\tBYE\t\t\tBYE\t\t", "-1\ta\tb\tBYE\t\tc\tBYE\t\t", "1\ta\tb\tBYE\t\tc\tBYE\t"} {
		if _, err := parseTraceLine(bad); !errors.Is(err, errBadTraceLine) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func FuzzParseTraceLine(f *testing.F) {
	f.Add("1795668794.331930514\t10.1.2.11\t10.1.2.20\tBYE\t\tabc@d\tBYE\t2\tu1")
	f.Add("1.5\ta\tb\t\t200\tc\tINVITE\t\tu4")
	f.Fuzz(func(t *testing.T, line string) {
		if _, err := parseTraceLine(line); err != nil && !errors.Is(err, errBadTraceLine) {
			t.Fatalf("error %v does not wrap errBadTraceLine", err)
		}
	})
}
