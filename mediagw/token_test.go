package mediagw

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// dialStatus is the HTTP status of a WebSocket attach: 101 when it was accepted.
func dialStatus(t *testing.T, url string) int {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return resp.StatusCode
}

// A media token is bound to its termination and short-lived: the one a page holds
// expires, a fresh one from POST /token attaches, and neither ever attaches to another
// termination, not even after its own has ended.
func TestTokenBoundAndShortLived(t *testing.T) {
	t.Parallel()
	// 2 s: the expiry is cut to whole seconds, so a token lives between 1 and 2 s, time
	// enough to use a fresh one and little to wait for one to expire.
	e := newEnv(t, func(c *Config) { c.TokenTTL = 2 * time.Second })
	a := e.newCall(t, newPeer(t), false)
	b := e.newCall(t, newPeer(t), false)
	tokenOf := func(url string) string { return url[strings.Index(url, "token=")+len("token="):] }
	ctx := context.Background()

	// A's URL from the remote answer: bound to A.
	if got := dialStatus(t, wsURLFor(e.wsBase, b.id, tokenOf(a.url))); got != http.StatusForbidden {
		t.Errorf("A's token on B: %d, want 403", got)
	}
	// Expired: wait out the lifetime the answer states (a page that reloads later).
	mu, err := e.cl.NewURL(ctx, a.id)
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(mu.ExpiresAt); life > 2*time.Second {
		t.Errorf("token lives %s, beyond TokenTTL 2s", life)
	}
	time.Sleep(time.Until(mu.ExpiresAt) + 10*time.Millisecond)
	if got := dialStatus(t, mu.URL); got != http.StatusForbidden {
		t.Errorf("expired token: %d, want 403", got)
	}
	// A fresh one from the API attaches.
	fresh, err := e.cl.NewURL(ctx, a.id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fresh.URL, "/media/"+a.id+"?") {
		t.Errorf("fresh url %s is not A's", fresh.URL)
	}
	if got := dialStatus(t, fresh.URL); got != http.StatusSwitchingProtocols {
		t.Errorf("fresh token: %d, want 101", got)
	}
	fresh, err = e.cl.NewURL(ctx, a.id)
	if err != nil {
		t.Fatal(err)
	}
	if got := dialStatus(t, wsURLFor(e.wsBase, b.id, tokenOf(fresh.URL))); got != http.StatusForbidden {
		t.Errorf("A's fresh token on B: %d, want 403", got)
	}
	// A ends: its token still opens nothing, neither A (gone) nor B.
	if err := e.cl.Delete(ctx, a.id); err != nil {
		t.Fatal(err)
	}
	if got := dialStatus(t, fresh.URL); got != http.StatusNotFound {
		t.Errorf("token of an ended termination: %d, want 404", got)
	}
	if got := dialStatus(t, wsURLFor(e.wsBase, b.id, tokenOf(fresh.URL))); got != http.StatusForbidden {
		t.Errorf("ended A's token on B: %d, want 403", got)
	}
	if _, err := e.cl.NewURL(ctx, a.id); !isAPI(err, http.StatusNotFound, ErrNotFound) {
		t.Errorf("new url of an ended termination: %v, want 404", err)
	}
}
