package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"dsmgw/otbridge"
	"dsmgw/otbridge/dsmclient"
	"dsmgw/store"
)

// callTimeout bounds one call from dialling to its end on loopback: a UAS answers in
// milliseconds; a call that takes this long has failed.
const callTimeout = 30 * time.Second

// pages runs page sessions against one gateway.
type pages struct {
	base string // http://host:port of the gateway
	ws   string // ws://host:port/dsm
	uas  string // the sipp UAS, host:port
	http *http.Client

	sessions, calls, failed atomic.Int64
	errMu                   sync.Mutex
	firstErr                error
}

func newPages(base, uas string) *pages {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256 // every page asks for a session: keep the connections
	return &pages{base: base, ws: "ws" + strings.TrimPrefix(base, "http") + "/dsm", uas: uas,
		http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// run opens n sessions, conc at a time, the first callN of them placing a call (spread
// evenly), and returns when all have closed.
func (p *pages) run(ctx context.Context, n, conc int, callFrac float64) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				// Session i calls when the running count of calls falls behind the fraction.
				call := int64(float64(i+1)*callFrac) > int64(float64(i)*callFrac)
				if err := p.one(ctx, call); err != nil && ctx.Err() == nil {
					p.failed.Add(1)
					p.errMu.Lock()
					if p.firstErr == nil {
						p.firstErr = err
					}
					p.errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}

// err returns the first session error seen (nil when none failed).
func (p *pages) err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.firstErr
}

// one is one page: session, connect, player written (and a call placed and ended), close.
func (p *pages) one(ctx context.Context, call bool) error {
	sess, err := p.session(ctx)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	c, err := dsmclient.Dial(dctx, dsmclient.Config{URL: p.ws, Token: sess.Token})
	if err != nil {
		return err
	}
	defer c.Close()
	addr := "players/" + sess.Client + "/audio"
	o, err := c.Subscribe(dctx, addr)
	if err != nil {
		return err
	}
	changed := make(chan struct{}, 1)
	defer o.OnChange(func(dsmclient.Event) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})()
	if err := c.Blind("players").Do(store.Set(addr, "audio")); err != nil {
		return err
	}
	p.sessions.Add(1)
	if !call {
		if err := o.Do(store.Set("service", "mmtel"), store.Set("player_state", "disconnected")); err != nil {
			return err
		}
		return c.Idle(dctx)
	}
	p.calls.Add(1)
	if err := o.Do(store.Set("service", "mmtel"), store.Set("remote", "sip:service@"+p.uas),
		store.Set("encoding", "PCMU"), store.Set("player_state", "connecting")); err != nil {
		return err
	}
	st, err := waitState(dctx, o, changed, "connected", "failed")
	if err != nil {
		return err
	}
	if st != "connected" {
		return fmt.Errorf("call failed: %v", o.Fields())
	}
	if err := o.Do(store.Set("player_state", "disconnected")); err != nil {
		return err
	}
	if _, err := waitState(dctx, o, changed, "disconnected", "failed"); err != nil {
		return err
	}
	return c.Idle(dctx)
}

// openLive opens n pages that stay connected for the whole run (a gateway always has
// some): they hold their player objects and index entries through every janitor round,
// which must keep them, and make the baseline a working gateway's. close ends them.
func (p *pages) openLive(ctx context.Context, n int) (close func(), err error) {
	var clients []*dsmclient.Client
	close = func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for range n {
		sess, err := p.session(ctx)
		if err != nil {
			close()
			return nil, err
		}
		c, err := dsmclient.Dial(ctx, dsmclient.Config{URL: p.ws, Token: sess.Token})
		if err != nil {
			close()
			return nil, err
		}
		clients = append(clients, c)
		addr := "players/" + sess.Client + "/audio"
		o, err := c.Subscribe(ctx, addr)
		if err == nil {
			err = c.Blind("players").Do(store.Set(addr, "audio"))
		}
		if err == nil {
			err = o.Do(store.Set("service", "mmtel"), store.Set("player_state", "disconnected"))
		}
		if err == nil {
			err = c.Idle(ctx)
		}
		if err != nil {
			close()
			return nil, fmt.Errorf("live page: %w", err)
		}
	}
	return close, nil
}

// waitState waits until the player's mgw_state is one of want and returns it.
func waitState(ctx context.Context, o *dsmclient.Object, changed <-chan struct{}, want ...string) (string, error) {
	for {
		v, _ := o.Get("mgw_state")
		for _, w := range want {
			if v == w {
				return v, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for mgw_state %v (have %q): %w", want, v, ctx.Err())
		case <-changed:
		}
	}
}

// session gets an anonymous session from GET /session, as a page does.
func (p *pages) session(ctx context.Context) (otbridge.Session, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/session", nil)
	if err != nil {
		return otbridge.Session{}, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return otbridge.Session{}, err
	}
	defer resp.Body.Close()
	var s otbridge.Session
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.Token == "" {
		return s, errors.Join(fmt.Errorf("session: HTTP %d", resp.StatusCode), err)
	}
	return s, nil
}
