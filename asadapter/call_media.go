package asadapter

import (
	"context"
	"errors"

	"dsmgw/store"
)

// A page that comes back to a call (a reload, a network change) attaches its media
// WebSocket to the URL in mgw_url. Its token guards only the attach and lives
// MGW_TOKEN_TTL (30 s by default), so a page that returns later finds it expired: it then
// deletes mgw_url (expecting the URL it holds), and the call asks the media gateway for a
// fresh one (POST /v1/terminations/{id}/token) and writes it back.

// renewMediaURL writes a fresh media URL when the connected call's page deleted it.
func (c *call) renewMediaURL(ctx context.Context, fl map[string]string) {
	a := c.a
	if fl[a.f.mgwState] != stateConnected || fl[a.f.mgwURL] != "" {
		return
	}
	c.mu.Lock()
	term, callID := c.d.Term, c.d.CallID
	c.mu.Unlock()
	if term == "" {
		return
	}
	url, err := a.mgw.NewURL(ctx, term)
	if err != nil {
		a.met.mgwErrors.WithLabelValues("new_url").Inc()
		c.log.Warn("fresh media URL failed", "term", term, "err", err)
		return
	}
	err = c.commit(ctx, store.Expect(a.f.callID, callID), store.Expect(a.f.mgwState, stateConnected),
		store.ExpectAbsent(a.f.mgwURL), store.Set(a.f.mgwURL, url))
	if err != nil && !errors.Is(err, store.ErrExpectFailed) {
		c.log.Warn("write fresh media URL failed", "err", err)
		return
	}
	c.log.Info("fresh media URL for the page")
}
