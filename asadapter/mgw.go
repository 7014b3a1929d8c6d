package asadapter

import (
	"context"
	"errors"
	"fmt"

	"dsmgw/asadapter/sdp"
	"dsmgw/mediagw"
	"dsmgw/store"
)

// MediaGateway is what the adapter needs from the media gateway (package mediagw, over its
// HTTP API or in process): terminations that carry RTP between the browser's WebSocket and
// the SIP side. The adapter declares it so it can be wired to any implementation.
type MediaGateway interface {
	// AddLocal allocates an RTP port for a new call and returns the address to put in SDP.
	AddLocal(ctx context.Context, req LocalRequest) (Local, error)
	// AddRemote sets where the far end's RTP goes and which payload types were
	// negotiated; it returns the URL the browser's media player attaches to.
	AddRemote(ctx context.Context, id string, r sdp.Remote) (url string, err error)
	// Modify changes the remote side after a re-INVITE (new address, hold, resume).
	Modify(ctx context.Context, id string, r sdp.Remote) error
	// NewURL returns a fresh media URL (a new token) for a termination with a remote: a
	// page that reattaches after its URL's token expired (a reload) needs one.
	NewURL(ctx context.Context, id string) (url string, err error)
	// Delete removes a termination; deleting an unknown one is not an error.
	Delete(ctx context.Context, id string) error
	// DTMF sends RFC 4733 telephone-events for digits toward the SIP side.
	DTMF(ctx context.Context, id string, digits string) error
	// Gate opens or closes the gate of a gated (push-to-talk) termination: the
	// browser's audio reaches the far end only while it is open.
	Gate(ctx context.Context, id string, open bool) error
	// Termination returns a termination's state and counters (receive statistics, the
	// far end's report, drops): the call's media quality shown on the page
	// (call_quality.go).
	Termination(ctx context.Context, id string) (mediagw.Termination, error)
}

// LocalRequest asks for a local termination.
type LocalRequest struct {
	Player string // the player object's address, for the gateway's logs and events
	CallID string
	// Gated asks for a push-to-talk termination whose gate starts closed.
	Gated bool
}

// Local is an allocated local termination.
type Local struct {
	ID   string // termination id
	Addr string // IP address to advertise in SDP (c=)
	Port int    // RTP port to advertise in SDP (m=); RTCP is Port+1
}

// MediaGatewayClient adapts the media gateway's API (package mediagw: its Go client over
// HTTP, or the gateway itself when it runs in this process) to MediaGateway.
type MediaGatewayClient struct {
	c        mediagw.API
	owner    string
	eventURL string
}

// NewMediaGatewayClient wraps c: a *mediagw.Client, or the *mediagw.Gateway of this
// process (no HTTP request to oneself on every call set-up; its events then come through
// mediagw.Config.OnEvent). owner names this adapter instance (or cluster) in the
// gateway's terminations; eventURL, if not empty, is where the gateway POSTs its signed
// events (mount mediagw.EventHandler(secret, adapter.HandleMediaEvent) there).
func NewMediaGatewayClient(c mediagw.API, owner, eventURL string) *MediaGatewayClient {
	return &MediaGatewayClient{c: c, owner: owner, eventURL: eventURL}
}

// AddLocal implements MediaGateway.
func (m *MediaGatewayClient) AddLocal(ctx context.Context, req LocalRequest) (Local, error) {
	t, err := m.c.AddLocal(ctx, mediagw.AddLocalRequest{Owner: m.owner, CallID: req.CallID,
		Player: req.Player, EventURL: m.eventURL, Gated: req.Gated})
	if err != nil {
		return Local{}, err
	}
	return Local{ID: t.ID, Addr: t.Address, Port: t.RTPPort}, nil
}

func toPTs(r sdp.Remote) []mediagw.PayloadType {
	out := make([]mediagw.PayloadType, 0, len(r.Payloads))
	for _, p := range r.Payloads {
		out = append(out, mediagw.PayloadType{PT: p.PT, Name: p.Name, ClockRate: uint32(p.ClockRate)})
	}
	return out
}

// AddRemote implements MediaGateway.
func (m *MediaGatewayClient) AddRemote(ctx context.Context, id string, r sdp.Remote) (string, error) {
	u, err := m.c.AddRemote(ctx, id, mediagw.Remote{Address: r.Addr, RTPPort: r.Port, PayloadTypes: toPTs(r)})
	if err != nil {
		return "", err
	}
	if !r.Sends() {
		if err := m.Modify(ctx, id, r); err != nil {
			return "", err
		}
	}
	return u.URL, nil
}

// NewURL implements MediaGateway.
func (m *MediaGatewayClient) NewURL(ctx context.Context, id string) (string, error) {
	u, err := m.c.NewURL(ctx, id)
	if err != nil {
		return "", err
	}
	return u.URL, nil
}

// Modify implements MediaGateway: the termination holds (sends nothing to the far end)
// when the stream does not let us send (recvonly, inactive, or no address); our own hold
// (sendonly) does not mute it. The new address and payload types in any case.
func (m *MediaGatewayClient) Modify(ctx context.Context, id string, r sdp.Remote) error {
	h := !r.Sends()
	req := mediagw.ModifyRequest{Hold: &h, PayloadTypes: toPTs(r)}
	if r.Port != 0 {
		addr, port := r.Addr, r.Port
		req.Address, req.RTPPort = &addr, &port
	}
	_, err := m.c.Modify(ctx, id, req)
	return err
}

// Delete implements MediaGateway; an unknown termination is already gone.
func (m *MediaGatewayClient) Delete(ctx context.Context, id string) error {
	err := m.c.Delete(ctx, id)
	if errors.Is(err, mediagw.ErrNotFound) {
		return nil
	}
	return err
}

// DTMF implements MediaGateway.
func (m *MediaGatewayClient) DTMF(ctx context.Context, id, digits string) error {
	return m.c.SendDTMF(ctx, id, mediagw.DTMFRequest{Digits: digits})
}

// Termination implements MediaGateway.
func (m *MediaGatewayClient) Termination(ctx context.Context, id string) (mediagw.Termination, error) {
	t, err := m.c.Get(ctx, id)
	if err != nil {
		return mediagw.Termination{}, err
	}
	return *t, nil
}

// Gate implements MediaGateway.
func (m *MediaGatewayClient) Gate(ctx context.Context, id string, open bool) error {
	_, err := m.c.Modify(ctx, id, mediagw.ModifyRequest{GateOpen: &open})
	return err
}

// HandleMediaEvent receives the media gateway's events (in process through
// mediagw.Config.OnEvent, or over HTTP through mediagw.EventHandler). Only the events of
// the current termination of a call of ours count: a call whose media moved (a takeover,
// a lost media gateway) leaves its old termination behind, and the events of a stopping
// instance are its own business, not its calls' (they go on elsewhere). A termination
// the gateway ended (media timeout, setup timeout) fails its call: the player is marked
// failed and the call's goroutine, woken by that write, sends BYE; a media gateway that
// stops while another can take its calls has them moved there instead (mgwpool.go). The
// browser of a push-to-talk call detaching releases the call's floor.
func (a *Adapter) HandleMediaEvent(ev mediagw.Event) {
	if ev.Player == "" || ev.CallID == "" {
		return
	}
	c := a.callFor(ev.Player)
	if c == nil || a.runContext().Err() != nil {
		return
	}
	c.mu.Lock()
	current := c.d.CallID == ev.CallID && c.d.Term == ev.TerminationID
	c.mu.Unlock()
	if !current {
		c.log.Debug("event of a termination the call no longer uses", "event", ev.Type, "term", ev.TerminationID)
		return
	}
	if !ev.Type.Ends() {
		// The browser of a push-to-talk call went away: the call lives on, but its floor
		// is released now (call_ptt.go).
		c.floorDetached()
		return
	}
	if ev.Type == mediagw.EventShutdown && c.moveMedia("media gateway stopped") {
		return
	}
	if !c.enter(a.runContext()) {
		return // fenced: the termination's end is the next holder's business
	}
	defer c.leave()
	ctx, cancel := c.cleanupCtx()
	defer cancel()
	reason := fmt.Sprintf("media gateway: %s", ev.Type)
	if ev.Type == mediagw.EventMediaTimeout {
		reason = "media timeout"
	}
	// The media URL goes in the same commit: it points at the termination that just ended.
	ops := append([]store.Op{store.Expect(a.f.callID, ev.CallID)}, a.failOps(0, reason)...)
	err := c.commit(ctx, append(ops, store.Del(a.f.mgwURL))...)
	if err != nil && !errors.Is(err, store.ErrExpectFailed) {
		c.log.Warn("mark player failed after a media event", "err", err)
		return
	}
	c.log.Info("media gateway ended a termination", "event", ev.Type, "reason", ev.Reason)
	c.poke()
}
