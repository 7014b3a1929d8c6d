package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"dsmgw/asadapter/sdp"
)

// farEnd is the SIP phone the benchmark's calls reach: a UAS on loopback that answers
// every INVITE at once, follows re-INVITEs (a call's media moves to the address of the
// offer), sends each call a 20 ms PCMU frame every 20 ms to where its media currently
// is, and records when each frame from the gateway arrives and where every request came
// from. It answers along the Via (RFC 3261 section 18.2.2), so a survivor's re-INVITE is
// answered to the survivor.
type farEnd struct {
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	uri  string // sip:far@127.0.0.1:<port>
	port int
	rtp  *net.UDPConn
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu       sync.Mutex          // guards the fields below
	calls    map[string]*farCall // by Call-ID
	bySrc    map[string]*farCall // by the address its frames come from (the offer's)
	requests []farRequest        // requests received, in order
	byes     int                 // BYEs received
}

// farCall is one call at the far end.
type farCall struct {
	remote   *net.UDPAddr // where its frames go (nil once it ended)
	version  int          // o= version of our last description
	seq      uint16
	arrivals []time.Time // frames from the gateway, in order of arrival
}

// farRequest is one request the far end received.
type farRequest struct {
	at     time.Time
	method string
	src    string // host:port it came from
}

// startFarEnd listens for SIP and RTP on free loopback ports.
func startFarEnd(ctx context.Context, log *slog.Logger) (*farEnd, error) {
	ctx, stop := context.WithCancel(ctx)
	f := &farEnd{stop: stop, calls: map[string]*farCall{}, bySrc: map[string]*farCall{}}
	var err error
	if f.rtp, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
		stop()
		return nil, fmt.Errorf("far end RTP: %w", err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		stop()
		f.rtp.Close()
		return nil, fmt.Errorf("far end SIP: %w", err)
	}
	f.port = pc.LocalAddr().(*net.UDPAddr).Port
	f.uri = "sip:far@127.0.0.1:" + strconv.Itoa(f.port)
	if f.ua, err = sipgo.NewUA(sipgo.WithUserAgent("survivalbench-far")); err != nil {
		stop()
		return nil, err
	}
	if f.srv, err = sipgo.NewServer(f.ua, sipgo.WithServerLogger(log.With("component", "far-sip"))); err != nil {
		stop()
		return nil, err
	}
	f.srv.OnInvite(f.onInvite)
	f.srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	f.srv.OnBye(f.onBye)
	f.wg.Add(3)
	go func() { defer f.wg.Done(); _ = f.srv.ServeUDP(pc) }()
	go func() { defer f.wg.Done(); f.send(ctx) }()
	go func() { defer f.wg.Done(); f.receive() }()
	go func() { <-ctx.Done(); pc.Close(); f.rtp.Close() }()
	return f, nil
}

// close stops the far end and waits for its goroutines.
func (f *farEnd) close() {
	f.stop()
	f.srv.Close()
	f.wg.Wait()
	f.ua.Close()
}

func (f *farEnd) record(req *sip.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, farRequest{at: time.Now(), method: string(req.Method), src: req.Source()})
	f.mu.Unlock()
}

// onInvite answers a new call or a re-INVITE with 200 and our description; the media
// goes to the offer's address from now on.
func (f *farEnd) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	f.record(req)
	offer, err := sdp.Parse(req.Body())
	var remote sdp.Remote
	if err == nil {
		_, remote, err = sdp.NegotiateOffer(offer)
	}
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		return
	}
	to := &net.UDPAddr{IP: net.ParseIP(remote.Addr), Port: remote.Port}
	f.mu.Lock()
	c := f.calls[req.CallID().Value()]
	if c == nil {
		c = &farCall{}
		f.calls[req.CallID().Value()] = c
	}
	c.remote = to
	f.bySrc[to.String()] = c
	c.version++
	body := fmt.Sprintf("v=0\r\no=far 1 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", c.version, f.rtp.LocalAddr().(*net.UDPAddr).Port)
	f.mu.Unlock()
	res := sip.NewResponseFromRequest(req, 200, "OK", []byte(body))
	if tag, _ := req.To().Params.Get("tag"); tag == "" {
		res.To().Params.Add("tag", sip.GenerateTagN(12))
	}
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "far", Host: "127.0.0.1", Port: f.port}})
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	_ = tx.Respond(res)
}

func (f *farEnd) onBye(req *sip.Request, tx sip.ServerTransaction) {
	f.record(req)
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	f.mu.Lock()
	if c := f.calls[req.CallID().Value()]; c != nil {
		c.remote = nil
	}
	f.byes++
	f.mu.Unlock()
}

// send sends each live call a PCMU frame every 20 ms, to its current media address.
func (f *farEnd) send(ctx context.Context) {
	payload := make([]byte, 160)
	for i := range payload {
		payload[i] = 0xff
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	type out struct {
		to  *net.UDPAddr
		seq uint16
	}
	var batch []out
	buf := make([]byte, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		batch = batch[:0]
		f.mu.Lock()
		for _, c := range f.calls {
			if c.remote != nil {
				c.seq++
				batch = append(batch, out{c.remote, c.seq})
			}
		}
		f.mu.Unlock()
		for _, o := range batch {
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: o.seq,
				Timestamp: uint32(o.seq) * 160, SSRC: 0xfa4e}, Payload: payload}
			n, err := p.Header.MarshalTo(buf[:cap(buf)])
			if err != nil {
				continue
			}
			_, _ = f.rtp.WriteToUDP(append(buf[:n], payload...), o.to)
		}
	}
}

// receive records the arrival of every frame from the gateway.
func (f *farEnd) receive() {
	buf := make([]byte, 1500)
	for {
		n, src, err := f.rtp.ReadFromUDP(buf)
		if err != nil {
			return
		}
		if n < 12 || buf[1]&0x7f != 0 {
			continue // RTCP or another payload type
		}
		f.mu.Lock()
		if c := f.bySrc[src.String()]; c != nil {
			c.arrivals = append(c.arrivals, time.Now())
		}
		f.mu.Unlock()
	}
}

// frames returns the arrivals recorded so far for a call.
func (f *farEnd) frames(callID string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.calls[callID]; c != nil {
		return append([]time.Time(nil), c.arrivals...)
	}
	return nil
}

// byeCount is how many BYEs the far end received.
func (f *farEnd) byeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.byes
}

// requestsFrom counts the requests received from src after t.
func (f *farEnd) requestsFrom(src string, t time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r.src == src && r.at.After(t) {
			n++
		}
	}
	return n
}
