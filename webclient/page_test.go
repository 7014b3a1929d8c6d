package webclient

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"dsmgw/store"
)

// TestPageCannotConnect: behind a proxy that refuses the session or the WebSocket (403),
// the page says why in words, keeps every control disabled, and pressing Enter in the
// call field does not reload the page with ?remote= in the address.
func TestPageCannotConnect(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayOptions{Instances: 1})
	ctx := startBrowser(t)
	up, err := url.Parse(g.URLs[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, refuse, want string
	}{
		{"refused-session", "/session", "refused to open a session for this page (403)"},
		{"refused-websocket", "/dsm", "refused the page’s WebSocket"},
	} {
		proxy := httputil.NewSingleHostReverseProxy(up)
		front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == tc.refuse {
				http.Error(w, "forbidden by the proxy", http.StatusForbidden)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		t.Cleanup(front.Close)
		page := front.URL + "/?user=alice"
		within(t, ctx, 20*time.Second, "load "+tc.name, chromedp.Navigate(page))
		within(t, ctx, 20*time.Second, tc.name+": the page says why", chromedp.Poll[bool](fmt.Sprintf(
			`document.getElementById('conn').dataset.state === 'error' && document.getElementById('notice').textContent.includes(%q)`, tc.want)))
		disabled := within(t, ctx, 5*time.Second, "controls", chromedp.Evaluate[[]bool](`['remote', 'call', 'join', 'pttjoin', 'hangup']
			.map((id) => document.getElementById(id).disabled).concat([...document.querySelectorAll('#pad button')].map((b) => b.disabled))`))
		for i, d := range disabled {
			if !d {
				t.Fatalf("%s: control %d enabled on a page that is not connected", tc.name, i)
			}
		}
		// A form submitted anyway (Enter, or a script) stays on the page.
		within(t, ctx, 5*time.Second, "submit", chromedp.Evaluate[bool](`document.getElementById('remote').disabled = false;
			document.getElementById('remote').value = 'bob'; document.getElementById('dial').requestSubmit(); true`))
		within(t, ctx, 5*time.Second, "let a navigation happen", chromedp.Sleep(300*time.Millisecond))
		if loc := within(t, ctx, 5*time.Second, "location", chromedp.Evaluate[string](`location.href`)); loc != page {
			t.Fatalf("%s: the page went to %s", tc.name, loc)
		}
		shot(t, ctx, tc.name)
	}
}

// TestPageIncomingCallCancelled: a call rings the page (ringtone, title alert, caller id)
// and the caller hangs up: the page stops ringing at the gateway's write and says so. The
// time from the write to the page hiding the call is logged (a measurement, not asserted).
func TestPageIncomingCallCancelled(t *testing.T) {
	t.Parallel()
	g := startGateway(t, gatewayOptions{Instances: 1})
	st := g.Store
	ctx := startBrowser(t)
	within(t, ctx, 20*time.Second, "load the page", chromedp.Navigate(g.URLs[0]+"/?user=carl"))
	within(t, ctx, 20*time.Second, "DSM client connected",
		chromedp.Poll[bool](`window.dsmgw && window.dsmgw.ready === true && window.dsmgw.dsm.state === 'open'`))
	player := within(t, ctx, 5*time.Second, "player address", chromedp.Evaluate[string](`window.dsmgw.player.addr`))

	// As the AS adapter's setupIn writes an incoming call.
	commit(t, st, player, store.Set("player_state", "ringing"), store.Set("mgw_state", "connecting"),
		store.Set("caller", `Dora D <sip:dora@example.com>`), store.Set("call_id", "c1"),
		store.Set("remote", "sip:dora@example.com"), store.Set("service", "mmtel"))
	within(t, ctx, 10*time.Second, "ringing shown", chromedp.Poll[bool](`!document.getElementById('incoming').hidden &&
		document.getElementById('caller').textContent === 'Dora D' &&
		document.getElementById('call-status').textContent === 'Dora D is calling you' &&
		window.dsmgw.tones.name === 'ring' && !document.getElementById('answer').disabled`))
	within(t, ctx, 10*time.Second, "title alert", chromedp.Poll[bool](`document.title.includes('Dora D is calling')`))
	shot(t, ctx, "incoming")

	within(t, ctx, 5*time.Second, "watch the ringing end", chromedp.Evaluate[bool](`window.stoppedAt = 0;
		new MutationObserver(() => { if (!window.stoppedAt && document.getElementById('incoming').hidden) window.stoppedAt = Date.now(); })
			.observe(document.getElementById('incoming'), { attributes: true }); true`))
	at := within(t, ctx, 5*time.Second, "clock", chromedp.Evaluate[float64](`Date.now()`))
	commit(t, st, player, store.Expect("call_id", "c1"), store.Set("player_state", "disconnected"),
		store.Set("mgw_state", "disconnected"), store.Set("sip_reason", "caller cancelled"))
	stopped := within(t, ctx, 10*time.Second, "ringing stops", chromedp.Poll[float64](`window.stoppedAt || false`))
	within(t, ctx, 10*time.Second, "cancelled in words", chromedp.Poll[bool](`document.getElementById('call-status').textContent ===
		'The caller hung up before you answered' && window.dsmgw.tones.name === '' && !document.title.includes('calling')`))
	t.Logf("the caller's hang-up written to the page no longer ringing: %v", time.Duration(stopped-at)*time.Millisecond)
	shot(t, ctx, "caller-cancelled")

	// The failures a person meets, each in its sentence.
	for _, f := range []struct{ status, reason, want string }{
		{"486", "Busy Here", "Busy"},
		{"404", "Not Found", "Nobody by that name or number"},
		{"", "gateway instance lost", "The gateway handling the call stopped; please call again"},
	} {
		ops := []store.Op{store.Set("player_state", "failed"), store.Set("sip_reason", f.reason)}
		if f.status != "" {
			ops = append(ops, store.Set("sip_status", f.status))
		} else {
			ops = append(ops, store.Del("sip_status"))
		}
		commit(t, st, player, ops...)
		within(t, ctx, 10*time.Second, "failure "+f.want, chromedp.Poll[bool](fmt.Sprintf(
			`document.getElementById('call-status').textContent === %q && document.getElementById('call-status').dataset.state === 'failed'`, f.want)))
		if f.status == "486" {
			shot(t, ctx, "failed-busy")
		}
	}
	// A call whose microphone is refused: the page says so in words and stays in the call.
	within(t, ctx, 5*time.Second, "refuse the microphone", chromedp.Evaluate[bool](`navigator.mediaDevices.getUserMedia =
		() => Promise.reject(new DOMException('Permission denied', 'NotAllowedError')); true`))
	commit(t, st, player, store.Set("call_id", "c2"), store.Set("player_state", "connected"), store.Set("mgw_state", "connected"),
		store.Set("remote", "sip:dora@example.com"), store.Del("caller"), store.Del("sip_status"), store.Del("sip_reason"),
		store.Set("mgw_url", "ws://127.0.0.1:9/media/t-none?token=4102444800.x"))
	within(t, ctx, 10*time.Second, "microphone refusal explained", chromedp.Poll[bool](`document.getElementById('media').textContent.startsWith(
		'The microphone is blocked.') && document.getElementById('call-status').textContent === 'In a call with dora' &&
		!document.getElementById('hangup').disabled`))
	shot(t, ctx, "microphone-blocked")
	if body := within(t, ctx, 5*time.Second, "page text", chromedp.Evaluate[string](`document.querySelector('.status').textContent`)); strings.Contains(body, "Busy Here") {
		t.Fatalf("raw SIP reason shown: %q", body)
	}
}
