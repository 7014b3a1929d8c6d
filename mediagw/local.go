package mediagw

import (
	"context"
	"fmt"
	"time"
)

// API is the media gateway's terminations API as its users call it: *Client reaches a
// gateway over HTTP, *Gateway is the gateway itself, called in process (an AS adapter
// running in the same process as its media gateway needs no HTTP request to itself).
// Both answer the same errors (matching the sentinels of errors.go) for the same
// requests.
type API interface {
	// AddLocal allocates a port pair: the answer is what goes into the SDP offer.
	AddLocal(ctx context.Context, req AddLocalRequest) (*LocalTermination, error)
	// AddRemote sets the far end from the SDP answer and returns the browser's media URL.
	AddRemote(ctx context.Context, id string, remote Remote) (*MediaURL, error)
	// NewURL returns a fresh media URL (new token) for a termination that has a remote.
	NewURL(ctx context.Context, id string) (*MediaURL, error)
	// Modify changes hold state, remote address or payload types.
	Modify(ctx context.Context, id string, req ModifyRequest) (*Termination, error)
	// Delete removes a termination; an unknown id is an error matching ErrNotFound.
	Delete(ctx context.Context, id string) error
	// Get returns one termination with its counters.
	Get(ctx context.Context, id string) (*Termination, error)
	// List returns the live terminations, only those of owner when owner is not empty.
	List(ctx context.Context, owner string) ([]Termination, error)
	// SendDTMF queues RFC 4733 telephone-events toward the far end.
	SendDTMF(ctx context.Context, id string, req DTMFRequest) error
}

var (
	_ API = (*Client)(nil)
	_ API = (*Gateway)(nil)
)

// The in-process side of API: the HTTP handlers (api.go) call these too, so a request
// means the same over HTTP and in process. ctx is unused: nothing here waits.

// term returns the live termination id, or an error matching ErrNotFound.
func (g *Gateway) term(id string) (*termination, error) {
	t := g.lookup(id)
	if t == nil {
		return nil, fmt.Errorf("mediagw: termination %s: %w", id, ErrNotFound)
	}
	return t, nil
}

// AddLocal implements API in process.
func (g *Gateway) AddLocal(_ context.Context, req AddLocalRequest) (*LocalTermination, error) {
	if err := validateAddLocal(req); err != nil {
		return nil, err
	}
	t, err := g.addLocal(req)
	if err != nil {
		return nil, err
	}
	return &LocalTermination{ID: t.id, Address: g.cfg.PublicAddr, RTPPort: t.port, RTCPPort: t.port + 1}, nil
}

// AddRemote implements API in process; the termination keeps its hold state.
func (g *Gateway) AddRemote(_ context.Context, id string, remote Remote) (*MediaURL, error) {
	t, err := g.term(id)
	if err != nil {
		return nil, err
	}
	return t.addRemote(remote)
}

func (t *termination) addRemote(remote Remote) (*MediaURL, error) {
	hold := false
	if p := t.peer.Load(); p != nil {
		hold = p.hold
	}
	if err := t.setPeer(remote, hold); err != nil {
		return nil, err
	}
	t.log.Info("remote termination added", "remote", remote.Address, "rtp_port", remote.RTPPort)
	u := t.mediaURL(time.Now())
	return &u, nil
}

// NewURL implements API in process.
func (g *Gateway) NewURL(_ context.Context, id string) (*MediaURL, error) {
	t, err := g.term(id)
	if err != nil {
		return nil, err
	}
	return t.newURL()
}

func (t *termination) newURL() (*MediaURL, error) {
	if t.peer.Load() == nil {
		return nil, fmt.Errorf("%w: termination %s has no remote yet", ErrConflict, t.id)
	}
	u := t.mediaURL(time.Now())
	return &u, nil
}

// Modify implements API in process.
func (g *Gateway) Modify(_ context.Context, id string, req ModifyRequest) (*Termination, error) {
	t, err := g.term(id)
	if err != nil {
		return nil, err
	}
	if err := t.modify(req); err != nil {
		return nil, err
	}
	v := t.view()
	return &v, nil
}

// Delete implements API in process.
func (g *Gateway) Delete(_ context.Context, id string) error {
	t, err := g.term(id)
	if err != nil {
		return err
	}
	return g.delete(t)
}

// delete removes t, unless it ended or was deleted since it was looked up (ErrNotFound).
func (g *Gateway) delete(t *termination) error {
	g.mu.Lock()
	mine := g.terms[t.id] == t
	delete(g.terms, t.id)
	g.mu.Unlock()
	if !mine {
		return fmt.Errorf("mediagw: termination %s: %w", t.id, ErrNotFound)
	}
	t.close()
	g.m.ended.WithLabelValues("deleted").Inc()
	t.log.Info("termination deleted")
	return nil
}

// Get implements API in process.
func (g *Gateway) Get(_ context.Context, id string) (*Termination, error) {
	t, err := g.term(id)
	if err != nil {
		return nil, err
	}
	v := t.view()
	return &v, nil
}

// List implements API in process.
func (g *Gateway) List(_ context.Context, owner string) ([]Termination, error) {
	out := []Termination{}
	for _, t := range g.snapshotTerms() {
		if owner == "" || t.owner == owner {
			out = append(out, t.view())
		}
	}
	return out, nil
}

// SendDTMF implements API in process.
func (g *Gateway) SendDTMF(_ context.Context, id string, req DTMFRequest) error {
	t, err := g.term(id)
	if err != nil {
		return err
	}
	return t.sendDTMF(req)
}

func (t *termination) sendDTMF(req DTMFRequest) error {
	digits, err := parseDTMF(req)
	if err != nil {
		return err
	}
	return t.queueDTMF(digits)
}
