package topology

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// These checks are the ones every "a call survives" test makes once the call has moved
// (to a surviving AS adapter or media gateway): the page never showed the call or its
// media failed, one instance alone re-INVITEd, and bob's hang-up is seen.

// checkPageNeverFailed fails the test if the page showed a failed or disconnected state
// (call, DSM or media session: window.__states) since the fault named after.
func checkPageNeverFailed(t *testing.T, tab context.Context, after string) {
	t.Helper()
	states := within(t, tab, 5*time.Second, "states seen", chromedp.Evaluate[[]string](`window.__states`))
	for _, st := range states {
		if strings.Contains(st, "failed") || strings.HasPrefix(st, "disconnected") {
			t.Fatalf("the page showed %s after the %s (states %v)", st, after, states)
		}
	}
}

// checkOnlyReinviteFrom waits for a re-INVITE of callID from one of gateways (by address)
// and fails the test unless want alone sent re-INVITEs.
func checkOnlyReinviteFrom(t *testing.T, trace *sipTrace, what, callID string, gateways map[string]string, want, after string) {
	t.Helper()
	pkts := trace.waitFor(t, what, 15*time.Second, func(pkts []sipPacket) bool {
		return len(reinviteFrom(pkts, callID, gateways)) > 0
	})
	if by := reinviteFrom(pkts, callID, gateways); len(by) != 1 || by[want].IsZero() {
		t.Fatalf("re-INVITEs after the %s from %v, want %s only", after, by, want)
	}
}

// hangUpSeenByBob hangs the page's call up and waits for bob (baresip, service sip) to
// print that the call ended.
func hangUpSeenByBob(t *testing.T, tab context.Context, sip *Service) {
	t.Helper()
	const ended = "Call with sip:dsmgw@sip.dsmgw.test terminated"
	endedBefore := strings.Count(sip.Output(), ended)
	hangUp(t, tab)
	waitFor(t, "bob's side of the hang-up", 15*time.Second, func() bool { return strings.Count(sip.Output(), ended) > endedBefore })
}

// checkOnlyByeFrom waits for a BYE of callID from one of gateways and fails the test
// unless want alone sent it.
func checkOnlyByeFrom(t *testing.T, trace *sipTrace, what, callID string, gateways map[string]string, want string) {
	t.Helper()
	pkts := trace.waitFor(t, what, 15*time.Second, func(pkts []sipPacket) bool {
		return len(byeFrom(pkts, callID, gateways)) > 0
	})
	if by := byeFrom(pkts, callID, gateways); len(by) != 1 || by[want].IsZero() {
		t.Fatalf("BYE from %v, want %s", by, want)
	}
}

// waitMediaMoved waits until the page's player shows a media URL other than from and its
// media session is connected to that new URL.
func waitMediaMoved(t *testing.T, tab context.Context, what, from string) {
	t.Helper()
	waitPage(t, tab, what, fmt.Sprintf(
		`window.dsmgw.player.status.mgwURL !== %q && window.dsmgw.player.status.media === 'connected' && window.dsmgw.player.media && window.dsmgw.player.media.url === window.dsmgw.player.status.mgwURL`,
		from))
}
