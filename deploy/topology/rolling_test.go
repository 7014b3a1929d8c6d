package topology

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
)

// rollingUsers are the page users a phone calls during the rolling restart.
const rollingUsers = 4

// rollingRestart stops each gateway in turn with SIGTERM (docker compose restart) while
// pages place calls one after the other, a phone (sipp, through the CSCF) keeps calling
// page users, each again a second after its last call ended, and DSM clients write: no
// new call may fail, no acknowledged op may be lost, and before each gateway exits, the
// registrations it held must have moved to another instance that registered its own
// contact (the CSCF then routes calls there). It logs each drain's duration.
func (f *faults) rollingRestart(t *testing.T) {
	s := f.s
	gws := []string{"gw1", "gw2", "gw3"}
	callees := make([]*goPage, rollingUsers)
	for i := range callees {
		callees[i] = newPage(t, f.lb)
		f.registerUser(t, fmt.Sprintf("u%d", i+1), callees[i])
	}
	trace := traceSIP(t, s.Service(t, "sip"))
	// The callees answer until the phone has finished its last call; the callers stop
	// placing calls first.
	stopAnswer, stopCalls := make(chan struct{}), make(chan struct{})
	var answerers, loops sync.WaitGroup
	var answered atomic.Int32
	for _, p := range callees {
		answerers.Go(func() { autoAnswer(p, stopAnswer, &answered) })
	}
	sipp := f.startPhone(t)
	load := startDSMLoad(t, f.lb, 4)
	callers := make([]*callLoop, 3)
	for i := range callers {
		callers[i] = &callLoop{p: newPage(t, f.lb)}
		loops.Go(func() { callers[i].run(stopCalls) })
	}
	time.Sleep(2 * time.Second) // calls of every kind before the first restart

	for _, gw := range gws {
		held := f.registeredAt(t, s.Service(t, gw).Addr.String())
		d := s.Stop(t, gw)
		after := f.registeredAt(t, s.Service(t, gw).Addr.String())
		moved, drain := drainFigures(s.Service(t, gw).Output())
		t.Logf("%s: SIGTERM to exit %s (its own count: %s); it held %d registrations, %d moved before it exited, %d still at it",
			gw, d.Round(time.Millisecond), drain, len(held), moved, len(after))
		if len(after) > 0 {
			t.Errorf("%s exited with registrations still pointing at it: %v", gw, after)
		}
		t1 := time.Now()
		s.Restart(t, gw)
		t.Logf("%s restarted and healthy in %s; from the load balancer: %s", gw, time.Since(t1).Round(time.Millisecond),
			s.Exec(t, "lb", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://"+gw+":8080/readyz"))
		time.Sleep(2 * time.Second) // load on the whole stack again before the next one
	}

	close(stopCalls)
	loops.Wait()
	ok, bad := sipp.finish(t)
	close(stopAnswer)
	answerers.Wait()
	total, failed := 0, 0
	for _, c := range callers {
		total += c.ok + len(c.failed)
		failed += len(c.failed)
		for _, why := range c.failed {
			t.Errorf("a page's new call failed: %s", why)
		}
	}
	t.Logf("pages: %d new calls, %d failed; phone to page users: %d calls, %d failed (%d answered by pages)",
		total, failed, ok+bad, bad, answered.Load())
	if bad > 0 || ok == 0 {
		t.Errorf("phone calls to page users: %d succeeded, %d failed; refusals of INVITEs seen at the CSCF: %v",
			ok, bad, inviteRefusals(trace.packets(), gatewayAddrs(s)))
	}
	acked, reconnects := load.stopAndCheck(t, f.lb)
	t.Logf("DSM load over the rolling restart: %d ops acknowledged, none lost; %d reconnects", acked, reconnects)
}

// inviteRefusals counts the final failure responses to INVITEs the gateways sent, by
// gateway and status.
func inviteRefusals(pkts []sipPacket, gateways map[string]string) map[string]int {
	out := map[string]int{}
	for _, p := range pkts {
		if gw, ok := gateways[p.Src]; ok && p.CSeq == "INVITE" && p.Status >= 300 {
			out[fmt.Sprintf("%s %d", gw, p.Status)]++
		}
	}
	return out
}

// drainFigures reads from a gateway's log how many registrations it handed off and how
// long its drain took, by its own count.
func drainFigures(out string) (moved int, took string) {
	for _, l := range strings.Split(out, "\n") {
		var m struct {
			Msg   string        `json:"msg"`
			Moved int           `json:"moved"`
			Took  time.Duration `json:"drain_took"` // slog writes a duration in nanoseconds
		}
		if json.Unmarshal([]byte(l), &m) != nil {
			continue
		}
		switch m.Msg {
		case "registrations handed off":
			moved = m.Moved
		case "hung up calls":
			took = m.Took.Round(time.Millisecond).String()
		}
	}
	return moved, took
}

// registerUser registers a page's user at the CSCF through the registration API, as the
// web server does, and waits until the CSCF has a contact for it.
func (f *faults) registerUser(t *testing.T, user string, p *goPage) {
	t.Helper()
	secret := f.s.Project.Services["gw1"].Environment["USERS_SECRET"]
	body, _ := json.Marshal(map[string]any{"sip_uri": "sip:" + user + "@sip.dsmgw.test", "client": p.sess.Client, "ttl_seconds": 600})
	req, _ := http.NewRequest(http.MethodPost, f.lb+"/v1/users/"+user+"/register", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+*secret)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("register %s: %s", user, res.Status)
	}
	waitFor(t, user+" registered at the CSCF", 30*time.Second, func() bool { return len(f.contacts(t, user)) > 0 })
}

// contacts asks the CSCF for a user's registered contacts.
func (f *faults) contacts(t *testing.T, user string) []string {
	t.Helper()
	out := f.s.Exec(t, "sip", "sh", "-c", "kamcmd -s tcp:127.0.0.1:2049 ul.lookup location "+user+" || true")
	var cs []string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Address:"); ok {
			cs = append(cs, strings.TrimSpace(v))
		}
	}
	return cs
}

// registeredAt returns the page users whose contact at the CSCF is at addr.
func (f *faults) registeredAt(t *testing.T, addr string) []string {
	t.Helper()
	var out []string
	for i := range rollingUsers {
		user := fmt.Sprintf("u%d", i+1)
		for _, c := range f.contacts(t, user) {
			if strings.Contains(c, "@"+addr+":") || strings.Contains(c, "@"+addr+";") || strings.HasSuffix(c, "@"+addr) {
				out = append(out, user)
			}
		}
	}
	return out
}

// autoAnswer answers every call that rings the page, as a user would.
func autoAnswer(p *goPage, stop <-chan struct{}, answered *atomic.Int32) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if p.fields()["player_state"] == "ringing" && p.answer() == nil {
			answered.Add(1)
		}
	}
}

// callLoop is a page placing calls one after the other: each is established, lasts a
// moment and is hung up by the page.
type callLoop struct {
	p      *goPage
	ok     int
	failed []string
}

// callHold is how long each of a callLoop's calls lasts: far below the compose file's
// SHUTDOWN_GRACE (10 s), so a draining gateway's calls end on their own.
const callHold = 300 * time.Millisecond

func (l *callLoop) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		if err := l.p.place(echoURI); err != nil {
			l.failed = append(l.failed, err.Error())
			return
		}
		f, ok := l.p.wait(30*time.Second, func(f map[string]string) bool { return connected(f) || f["mgw_state"] == "failed" })
		if !ok || !connected(f) {
			l.failed = append(l.failed, fmt.Sprintf("call %s: %v", f["call_id"], f))
			continue
		}
		l.ok++
		time.Sleep(callHold)
		if err := l.p.end(); err != nil {
			l.failed = append(l.failed, err.Error())
			return
		}
		l.p.wait(30*time.Second, ended)
	}
}

// phone is sipp calling the page users through the CSCF, each user again once its last
// call from the phone has ended.
type phone struct {
	s    *testpeer.Sipp
	stat string
}

// startPhone starts sipp in the host namespace (a phone on the Docker host) on the
// bridge's address, calling u1..u4 through the CSCF: one sipp user per page user (-users
// and an injection file in USER order), each calling its page user again a second after
// its last call ended (the scenario's final pause), so about two calls a second cross
// every drain. It once called them in turn at a fixed rate (-r 2): a call answered late
// on a loaded machine, or sipp catching up after a stall of its own (its watchdog saw
// 500 ms to 1 s), sent the next call to a user still in the previous one, whom the
// gateway rightly answered 486 Busy.
func (f *faults) startPhone(t *testing.T) *phone {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users.csv")
	var b strings.Builder
	b.WriteString("USER\n")
	for i := range rollingUsers {
		fmt.Fprintf(&b, "u%d\n", i+1)
	}
	if err := os.WriteFile(users, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	scenario, err := filepath.Abs("testdata/call_user.xml")
	if err != nil {
		t.Fatal(err)
	}
	stat := filepath.Join(dir, "stat.csv")
	cscf := net.JoinHostPort(f.s.Service(t, "sip").Addr.String(), "5060")
	sp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: scenario, Remote: cscf, Host: f.s.Network.Gateway.String(),
		Args: []string{"-inf", users, "-users", strconv.Itoa(rollingUsers), "-m", "100000",
			"-trace_stat", "-stf", stat, "-fd", "1", "-timeout_error", "-recv_timeout", "20000"}})
	return &phone{s: sp, stat: stat}
}

// finish lets sipp end its calls in progress and exit (SIGUSR1, its 'q' key) and returns
// its successful and failed calls.
func (ph *phone) finish(t *testing.T) (ok, failed int) {
	t.Helper()
	if err := syscall.Kill(ph.s.PID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	code, err := ph.s.Wait(60 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(ph.stat)
	if err != nil {
		t.Fatalf("sipp statistics: %v", err)
	}
	ok, failed, err = parseSippStats(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 && failed == 0 {
		t.Errorf("sipp exited with %d", code)
	}
	return ok, failed
}

// parseSippStats returns the cumulated successful and failed calls of the last line of
// a sipp -trace_stat file.
func parseSippStats(csv string) (ok, failed int, err error) {
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) < 2 {
		return 0, 0, fmt.Errorf("sipp statistics: %d lines", len(lines))
	}
	head, last := strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
	col := func(name string) (int, error) {
		for i, h := range head {
			if h == name && i < len(last) {
				return strconv.Atoi(last[i])
			}
		}
		return 0, fmt.Errorf("sipp statistics: no column %s", name)
	}
	if ok, err = col("SuccessfulCall(C)"); err != nil {
		return 0, 0, err
	}
	failed, err = col("FailedCall(C)")
	return ok, failed, err
}

func TestParseSippStats(t *testing.T) {
	ok, failed, err := parseSippStats("StartTime;SuccessfulCall(C);FailedCall(C)\nx;1;0\ny;12;3\n")
	if err != nil || ok != 12 || failed != 3 {
		t.Fatalf("%d %d %v", ok, failed, err)
	}
	for _, bad := range []string{"", "a;b", "SuccessfulCall(C)\n1", "SuccessfulCall(C);FailedCall(C)\nx;y"} {
		if _, _, err := parseSippStats(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseSippStats(f *testing.F) {
	f.Add("StartTime;SuccessfulCall(C);FailedCall(C)\nx;1;0\n")
	f.Fuzz(func(t *testing.T, csv string) { _, _, _ = parseSippStats(csv) })
}
