package mediagw

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// peerState is an immutable snapshot of the far end, swapped atomically so the packet
// paths read it without a lock.
type peerState struct {
	remote    Remote
	rtp, rtcp netip.AddrPort // negotiated destinations
	mux       bool           // the far end multiplexes RTCP on its RTP port (RFC 5761)
	pts       ptSet
	hold      bool
	lock      *sourceLock // shared by the snapshots of one remote address (source.go)
}

// termination is one port pair, its far end, its (at most one) WebSocket and the relay.
type termination struct {
	g                                   *Gateway
	id, owner, callID, player, eventURL string
	log                                 *slog.Logger
	created                             time.Time
	port                                int
	rtpConn, rtcpConn                   *net.UDPConn
	c                                   counters
	out                                 outStream
	// gated: a push-to-talk termination, whose browser RTP passes only while gate is
	// open (set by the owner through Modify; closed when the WebSocket detaches).
	gated bool
	gate  atomic.Bool

	peer       atomic.Pointer[peerState]
	ws         atomic.Pointer[wsConn]
	lastPacket atomic.Int64 // unix ns of the last valid packet either way
	clockStart atomic.Int64 // unix ns the media timeout clock (re)started

	mu          sync.Mutex // guards ended, dtmfQueue, dtmfRunning and writers of peer
	ended       bool
	dtmfQueue   []dtmfDigit
	dtmfRunning bool

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the UDP readers, the WebSocket reader/writer, DTMF sender
}

// addLocal allocates a port pair and starts its UDP readers.
func (g *Gateway) addLocal(req AddLocalRequest) (*termination, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	g.mu.RLock()
	closed, n := g.closed, len(g.terms)
	g.mu.RUnlock()
	if closed {
		return nil, fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	if n >= g.cfg.MaxTerminations {
		return nil, fmt.Errorf("%w: %d terminations, the limit", ErrUnavailable, n)
	}
	rtpConn, rtcpConn, port, err := g.ports.allocate()
	if err != nil {
		return nil, fmt.Errorf("mediagw: add local termination: %w", err)
	}
	t := &termination{
		g: g, id: id, owner: req.Owner, callID: req.CallID, player: req.Player, eventURL: req.EventURL,
		created: time.Now(), port: port, rtpConn: rtpConn, rtcpConn: rtcpConn, done: make(chan struct{}),
		gated: req.Gated,
	}
	t.log = g.log.With("termination", id, "call_id", req.CallID, "player", req.Player, "owner", req.Owner)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		t.closeSockets()
		return nil, fmt.Errorf("%w: shutting down", ErrUnavailable)
	}
	g.terms[id] = t
	g.mu.Unlock()
	t.wg.Add(2)
	go t.readUDP(rtpConn, false)
	go t.readUDP(rtcpConn, true)
	t.log.Info("local termination added", "rtp_port", port, "gated", req.Gated)
	return t, nil
}

// setPeer installs a new far end. A new address or port starts a new source lock (the
// SDP changed: its address gets the first chance again, latching may happen once more);
// otherwise (hold, payload types) the lock carries over.
func (t *termination) setPeer(r Remote, hold bool) error {
	p, err := newPeerState(r, hold)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return fmt.Errorf("%w: termination %s ended", ErrNotFound, t.id)
	}
	old := t.peer.Load()
	if old == nil || old.rtp != p.rtp || old.rtcp != p.rtcp {
		p.lock = newSourceLock(&t.g.cfg, p.rtp.Addr(), time.Now())
	} else {
		p.lock = old.lock
	}
	if old == nil || (old.hold && !hold) {
		// The timeout clock starts with the remote and restarts on resume, so a call is
		// not ended the moment it comes off hold.
		t.clockStart.Store(time.Now().UnixNano())
	}
	t.peer.Store(p)
	return nil
}

func newPeerState(r Remote, hold bool) (*peerState, error) {
	addr, err := netip.ParseAddr(r.Address)
	if err != nil {
		return nil, fmt.Errorf("%w: remote address %q is not an IP: %v", ErrBadRequest, r.Address, err)
	}
	addr = addr.Unmap()
	if r.RTPPort < 1 || r.RTPPort > 65535 {
		return nil, fmt.Errorf("%w: remote rtp_port %d out of 1-65535", ErrBadRequest, r.RTPPort)
	}
	if r.RTCPPort == 0 {
		r.RTCPPort = r.RTPPort + 1
	}
	if r.RTCPPort < 1 || r.RTCPPort > 65535 {
		return nil, fmt.Errorf("%w: remote rtcp_port %d out of 1-65535", ErrBadRequest, r.RTCPPort)
	}
	if len(r.PayloadTypes) == 0 || len(r.PayloadTypes) > 32 {
		return nil, fmt.Errorf("%w: %d payload types, want 1-32", ErrBadRequest, len(r.PayloadTypes))
	}
	p := &peerState{remote: r, hold: hold, mux: r.RTCPPort == r.RTPPort,
		rtp: netip.AddrPortFrom(addr, uint16(r.RTPPort)), rtcp: netip.AddrPortFrom(addr, uint16(r.RTCPPort))}
	for _, pt := range r.PayloadTypes {
		switch {
		case pt.PT > 127 || (pt.PT >= 64 && pt.PT <= 95):
			return nil, fmt.Errorf("%w: payload type %d not allowed (0-127, not the RTCP range 64-95)", ErrBadRequest, pt.PT)
		case p.pts.ok[pt.PT]:
			return nil, fmt.Errorf("%w: payload type %d listed twice", ErrBadRequest, pt.PT)
		case pt.ClockRate == 0 || pt.ClockRate > 1000000:
			return nil, fmt.Errorf("%w: payload type %d clock rate %d", ErrBadRequest, pt.PT, pt.ClockRate)
		case len(pt.Name) > 64:
			return nil, fmt.Errorf("%w: payload type %d name too long", ErrBadRequest, pt.PT)
		}
		p.pts.ok[pt.PT] = true
		p.pts.clock[pt.PT] = pt.ClockRate
		if strings.EqualFold(pt.Name, "telephone-event") && (!p.pts.eventOK || pt.ClockRate == 8000) {
			p.pts.event, p.pts.eventOK = pt.PT, true
		}
	}
	return p, nil
}

// modify applies a ModifyRequest.
func (t *termination) modify(req ModifyRequest) error {
	if req.GateOpen != nil {
		if !t.gated {
			return fmt.Errorf("%w: termination %s has no gate (add it with gated)", ErrConflict, t.id)
		}
		if t.gate.Swap(*req.GateOpen) != *req.GateOpen {
			t.log.Info("gate changed", "open", *req.GateOpen)
		}
	}
	cur := t.peer.Load()
	if cur == nil {
		if req.Address != nil || req.RTPPort != nil || req.RTCPPort != nil || req.PayloadTypes != nil || req.Hold != nil {
			// The gate (above) is the one thing that may change before the remote.
			return fmt.Errorf("%w: termination %s has no remote yet (add it first)", ErrConflict, t.id)
		}
		return nil
	}
	r := cur.remote
	r.PayloadTypes = slices.Clone(r.PayloadTypes)
	hold := cur.hold
	if req.Hold != nil {
		hold = *req.Hold
	}
	if req.Address != nil {
		r.Address = *req.Address
	}
	if req.RTPPort != nil {
		r.RTPPort = *req.RTPPort
		if req.RTCPPort == nil {
			r.RTCPPort = 0
		}
	}
	if req.RTCPPort != nil {
		r.RTCPPort = *req.RTCPPort
	}
	if req.PayloadTypes != nil {
		r.PayloadTypes = req.PayloadTypes
	}
	if err := t.setPeer(r, hold); err != nil {
		return err
	}
	t.log.Info("termination modified", "hold", hold, "remote", r.Address, "rtp_port", r.RTPPort)
	return nil
}

// mediaURL returns a fresh browser URL with a token valid for TokenTTL.
func (t *termination) mediaURL(now time.Time) MediaURL {
	exp := now.Add(t.g.cfg.TokenTTL).Truncate(time.Second)
	return MediaURL{URL: t.g.cfg.PublicWSURL + "/media/" + t.id + "?token=" + newToken(t.g.cfg.Secret, t.id, exp),
		ExpiresAt: exp.UTC()}
}

// close stops the relay: sockets, WebSocket, DTMF; waits for every goroutine and frees
// the ports. Safe to call twice.
func (t *termination) close() {
	t.closeOnce.Do(func() {
		t.mu.Lock()
		t.ended = true
		t.mu.Unlock()
		close(t.done)
		t.closeSockets()
		if w := t.ws.Swap(nil); w != nil {
			w.close(wsCloseNormal, "termination ended")
		}
		t.wg.Wait()
		t.g.ports.release(t.port)
		// The call's own figures go to the log, not to a labelled metric (metrics.go).
		cs := t.c.snapshot()
		t.g.m.observeEnd(cs)
		t.log.Info("termination closed", "ws_to_udp_rtp", cs.WSToUDP.RTPPackets, "udp_to_ws_rtp", cs.UDPToWS.RTPPackets,
			"dtmf_packets", cs.DTMFPackets, "drops", cs.Drops, "from_udp", cs.FromUDP, "from_ws", cs.FromWS)
	})
}

func (t *termination) closeSockets() {
	t.rtpConn.Close()
	t.rtcpConn.Close()
}

// view returns the API representation.
func (t *termination) view() Termination {
	out := Termination{ID: t.id, Owner: t.owner, CallID: t.callID, Player: t.player,
		Address: t.g.cfg.PublicAddr, RTPPort: t.port, RTCPPort: t.port + 1,
		CreatedAt: t.created.UTC(), WSAttached: t.ws.Load() != nil, Counters: t.c.snapshot(),
		Gated: t.gated, GateOpen: t.gated && t.gate.Load()}
	if p := t.peer.Load(); p != nil {
		r := p.remote
		r.PayloadTypes = slices.Clone(r.PayloadTypes)
		out.Remote, out.Hold = &r, p.hold
		if l := p.lock.rtp.Load(); l != nil {
			out.LatchedRTP = l.String()
		}
		if l := p.lock.rtcp.Load(); l != nil {
			out.LatchedRTCP = l.String()
		}
	}
	if ns := t.lastPacket.Load(); ns > 0 {
		out.LastPacketAt = time.Unix(0, ns).UTC()
	}
	return out
}

func (t *termination) event(typ EventType, reason string) Event {
	return Event{Type: typ, TerminationID: t.id, Owner: t.owner, CallID: t.callID, Player: t.player,
		Reason: reason, At: time.Now().UTC()}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
