package asadapter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"dsmgw/asadapter/sdp"
	"dsmgw/internal/testpeer"
	"dsmgw/store"
)

// A caller's CANCEL and the browser's answer, in both orders. The INVITE transaction of a
// cancelled call lives on for seconds after the CANCEL (Timer I after the ACK of the 487,
// Timer H without one): the browser must stop ringing at the CANCEL, not at the end of
// the transaction, and an answer that crosses the CANCEL must end the call, not leave it
// "connected" to nobody while a 200 that never left waits for its ACK.

// cancelCaller starts sipp calling user with one of the cancel scenarios; it sends the
// CANCEL pause after the 180.
func cancelCaller(t *testing.T, scenario, user, adapterAddr string, pause time.Duration) *testpeer.Sipp {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", scenario))
	if err != nil {
		t.Fatal(err)
	}
	return testpeer.StartSipp(t, testpeer.SippOptions{Scenario: path, Remote: adapterAddr, RTPEcho: true,
		Args: []string{"-m", "1", "-s", user, "-d", strconv.Itoa(int(pause.Milliseconds()))}})
}

// waitSippReceived waits until sipp's message log shows a received message starting with
// first (a status line such as "SIP/2.0 487").
func waitSippReceived(t *testing.T, s *testpeer.Sipp, first string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		b, _ := os.ReadFile(filepath.Join(s.Dir, "messages.log"))
		for _, block := range strings.Split(string(b), "-----------------------------------------------") {
			received := false
			for _, l := range strings.Split(block, "\n") {
				l = strings.TrimSpace(l)
				if strings.Contains(l, "message received") {
					received = true
					continue
				}
				if received && l != "" {
					if strings.HasPrefix(l, first) {
						return
					}
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sipp never received %q", first)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answer writes what the page writes to answer: connecting, expecting ringing. It
// reports false when the player no longer rings (the page's answer is refused).
func (e *env) answer(player string) bool {
	e.t.Helper()
	client, _, _ := e.st.Schema().ParsePlayerAddress(player)
	e.seq[player]++
	_, err := e.st.Commit(e.ctx, store.Commit{Obj: player, Client: "browser/" + client, Seq: e.seq[player], Base: -1,
		Ops: []store.Op{store.Expect("player_state", "ringing"), store.Set("player_state", "connecting")}})
	if errors.Is(err, store.ErrExpectFailed) {
		return false
	}
	if err != nil {
		e.t.Fatalf("answer %s: %v", player, err)
	}
	return true
}

// TestCancelStopsRinging: the caller cancels and never ACKs the 487, so the INVITE
// transaction lasts until Timer H (32 s, beyond the test's deadline); the player must
// end disconnected ("caller cancelled") at the CANCEL, and an answer after that is
// refused by its expectation, as the page's is.
func TestCancelStopsRinging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("kim", "kimclient")
	a := e.adapter("gw1", nil)
	s := cancelCaller(t, "cancel_noack.xml", "kim", a.a.Addr("udp"), 200*time.Millisecond)
	p := "players/kimclient/audio"
	e.waitField(p, "player_state", "ringing")
	waitSippReceived(t, s, "SIP/2.0 487")
	fl := e.waitField(p, "player_state", "disconnected")
	if fl["sip_reason"] != "caller cancelled" || fl["mgw_state"] != "disconnected" {
		t.Fatalf("cancelled player: %v", fl)
	}
	if e.answer(p) {
		t.Fatalf("an answer after the CANCEL was accepted: %v", e.fields(p))
	}
	e.waitNoTerminations()
}

// gatedMGW holds AddRemote until release is closed, after telling entered.
type gatedMGW struct {
	MediaGateway
	entered chan struct{}
	release chan struct{}
}

func (g *gatedMGW) AddRemote(ctx context.Context, id string, r sdp.Remote) (string, error) {
	signal(g.entered)
	select {
	case <-g.release:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.MediaGateway.AddRemote(ctx, id, r)
}

// TestAnswerCrossingCancel: the browser answers, and while the adapter prepares the 200
// (held in the media gateway request) the caller's CANCEL arrives and is answered 487.
// The call must end disconnected ("caller cancelled") with its termination deleted, not
// show connected while a 200 that was never sent waits 32 s for an ACK; and a second
// instance watching the same players must not take the live instance's call over.
func TestAnswerCrossingCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.registerUser("lou", "louclient")
	gate := &gatedMGW{entered: make(chan struct{}, 1), release: make(chan struct{})}
	a := e.adapterMGW("gw1", nil, func(m MediaGateway) MediaGateway { gate.MediaGateway = m; return gate })
	other := e.adapter("gw2", nil)
	s := cancelCaller(t, "cancel_ringing.xml", "lou", a.a.Addr("udp"), time.Second)
	p := "players/louclient/audio"
	e.waitField(p, "player_state", "ringing")
	if !e.answer(p) {
		t.Fatalf("answer refused: %v", e.fields(p))
	}
	select {
	case <-gate.entered:
	case <-time.After(waitFor):
		t.Fatalf("the adapter never prepared the answer: %v", e.fields(p))
	}
	waitSippReceived(t, s, "SIP/2.0 487")
	close(gate.release)
	fl := e.waitField(p, "player_state", "disconnected")
	if fl["sip_reason"] != "caller cancelled" || fl["mgw_state"] != "disconnected" || fl["mgw_url"] != "" {
		t.Fatalf("player after an answer crossed the CANCEL: %v", fl)
	}
	waitSipp(t, s)
	e.waitNoTerminations()
	if n := counterVecSum(t, other.a.met.takeovers) + counterVecSum(t, a.a.met.takeovers); n != 0 {
		t.Fatalf("%v takeovers of a live instance's call", n)
	}
}

// counterVecSum adds up every series of a counter vector.
func counterVecSum(t *testing.T, v *prometheus.CounterVec) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 64) // a handful of outcomes: Collect never fills it
	v.Collect(ch)
	close(ch)
	sum := 0.0
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}
