package sipfuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"dsmgw/asadapter/edge"
)

// answerWait is how long a well-formed request may wait for its final response before it
// counts as unanswered: the gateway answers at once (the INVITEs of a run ring nobody),
// so ten seconds covers any scheduling delay of a loaded machine.
const answerWait = 10 * time.Second

// Config is one run.
type Config struct {
	Gateway   string // the gateway's SIP address, host:port
	LocalIP   string // the address the fuzzer sends from
	Transport string // "udp" or "tcp"
	Messages  int    // how many to send
	Rate      int    // at most this many per second
	Window    int    // at most this many well-formed requests awaiting their answer
	Seed      uint64 // the mutator's
}

// Result is what a run saw.
type Result struct {
	Sent, WellFormed, Answered int
	// Unanswered are well-formed requests that got no final response (up to ten kept).
	Unanswered     []string
	UnansweredN    int
	Reconnects     int // TCP connections the gateway closed (after malformed messages)
	Elapsed        time.Duration
	AckedFinal     int // final responses to INVITEs the fuzzer acknowledged
	UnexpectedResp int // responses matching no request of the run
	BadStream      int // TCP streams from the gateway that could not be framed
	// BadStreamSample is the start of the first such stream's unframed bytes, with why.
	BadStreamSample string
}

// pending is a well-formed request awaiting its answer.
type pending struct {
	req  *sip.Request
	raw  []byte
	sent time.Time
}

// run is the state shared by a run's sender and readers.
type run struct {
	cfg Config
	mu  sync.Mutex // guards out, res
	out map[string]pending
	// branches are the Via branches of every message sent so far, as written: a mutation
	// can give a request the branch of an earlier one, which then is a retransmission of
	// that transaction (answered with its answer), not a new request.
	branches map[string]bool
	res      Result
	cond     *sync.Cond // signalled when out shrinks
}

// Run sends cfg.Messages mutated messages of seeds and returns what came back. Over UDP
// everything goes from one socket; over TCP well-formed requests go on one connection
// and the rest on another (the gateway may close a connection whose stream it cannot
// frame, which must not count against the requests behind it), each reopened when closed.
func Run(ctx context.Context, cfg Config, seeds []Seed) (Result, error) {
	r := &run{cfg: cfg, out: map[string]pending{}, branches: map[string]bool{}}
	r.cond = sync.NewCond(&r.mu)
	start := time.Now()
	var err error
	if strings.EqualFold(cfg.Transport, "tcp") {
		err = r.tcp(ctx, seeds)
	} else {
		err = r.udp(ctx, seeds)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Elapsed = time.Since(start)
	return r.res, err
}

// sendLoop makes and sends the messages: send gets each message and whether it is
// well-formed (it returns false to stop the run).
func (r *run) sendLoop(ctx context.Context, seeds []Seed, local string, send func([]byte, bool) bool) {
	m := NewMutator(seeds, r.cfg.Seed)
	tick := time.Second / time.Duration(max(1, r.cfg.Rate))
	next := time.Now()
	for i := range r.cfg.Messages {
		if ctx.Err() != nil {
			return
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(tick)
		t := Target{Local: local, Remote: r.cfg.Gateway, Transport: strings.ToUpper(r.cfg.Transport),
			User: "fuzz" + strconv.Itoa(i%50), ID: strconv.FormatUint(r.cfg.Seed, 36) + "x" + strconv.Itoa(i)}
		b := m.Next(t)
		exp, ok := WellFormed(b, local, r.cfg.Transport)
		r.mu.Lock()
		r.res.Sent++
		branch := branchOf(b)
		seen := r.branches[branch]
		r.branches[branch] = true
		if ok {
			key := exp.Req.CallID().Value()
			if _, dup := r.out[key]; dup || seen {
				ok = false // the Call-ID or branch of an earlier message: not a new request
			} else {
				r.res.WellFormed++
				r.out[key] = pending{req: exp.Req, raw: b, sent: time.Now()}
				for len(r.out) >= r.cfg.Window {
					r.expire()
					if len(r.out) >= r.cfg.Window {
						r.waitShrink()
					}
				}
			}
		}
		r.mu.Unlock()
		if !send(b, ok) {
			return
		}
	}
	r.mu.Lock()
	for deadline := time.Now().Add(answerWait + time.Second); len(r.out) > 0 && time.Now().Before(deadline); {
		r.expire()
		r.waitShrink()
	}
	r.expireAll()
	r.mu.Unlock()
}

// branchOf returns the branch of b's top Via as written ("" without one).
func branchOf(b []byte) string {
	_, v, ok := strings.Cut(topVia(b), "branch=")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(v, "; ,"); i >= 0 {
		v = v[:i]
	}
	return v
}

// waitShrink waits (r.mu held) until an answer arrives or 100 ms pass.
func (r *run) waitShrink() {
	t := time.AfterFunc(100*time.Millisecond, r.cond.Broadcast)
	r.cond.Wait()
	t.Stop()
}

// expire counts requests older than answerWait as unanswered (r.mu held).
func (r *run) expire() {
	for b, p := range r.out {
		if time.Since(p.sent) > answerWait {
			r.unanswered(b, p)
		}
	}
}

func (r *run) expireAll() {
	for b, p := range r.out {
		r.unanswered(b, p)
	}
}

func (r *run) unanswered(branch string, p pending) {
	delete(r.out, branch)
	r.res.UnansweredN++
	if len(r.res.Unanswered) < 10 {
		r.res.Unanswered = append(r.res.Unanswered, string(p.raw))
	}
}

// response records a response read from the gateway (matched to its request by Call-ID,
// unique per message of a run; read with the edge's scanner, which takes the odd headers
// a response copies from its request); ack is called with the ACK of a final response
// to an INVITE.
func (r *run) response(b []byte, ack func([]byte)) {
	var m edge.Message
	if edge.Scan(b, &m) != nil || m.Request {
		return
	}
	key := string(m.CallID(b))
	r.mu.Lock()
	p, found := r.out[key]
	if !found {
		if m.Status >= 200 {
			r.res.UnexpectedResp++
		}
		r.mu.Unlock()
		return
	}
	if m.Status < 200 {
		r.mu.Unlock()
		return
	}
	delete(r.out, key)
	r.res.Answered++
	r.cond.Broadcast()
	isInvite := p.req.Method == sip.INVITE
	if isInvite {
		r.res.AckedFinal++
	}
	r.mu.Unlock()
	if !isInvite {
		return
	}
	if msg, err := sip.ParseMessage(b); err == nil {
		if res, ok := msg.(*sip.Response); ok && res.To() != nil {
			ack(ackOf(p.req, res))
		}
	}
}

// ackOf is the ACK of a final response to an INVITE (RFC 3261 section 17.1.1.3: the
// INVITE's Request-URI, top Via, From, Call-ID and CSeq number, the response's To).
func ackOf(req *sip.Request, res *sip.Response) []byte {
	return []byte("ACK " + req.Recipient.String() + " SIP/2.0\r\n" +
		"Via: " + req.Via().Value() + "\r\n" +
		"From: " + req.From().Value() + "\r\n" +
		"To: " + res.To().Value() + "\r\n" +
		"Call-ID: " + req.CallID().Value() + "\r\n" +
		"CSeq: " + strconv.FormatUint(uint64(req.CSeq().SeqNo), 10) + " ACK\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
}

// udp runs over one UDP socket.
func (r *run) udp(ctx context.Context, seeds []Seed) error {
	c, err := net.ListenPacket("udp", net.JoinHostPort(r.cfg.LocalIP, "0"))
	if err != nil {
		return fmt.Errorf("sipfuzz: %w", err)
	}
	if uc, ok := c.(*net.UDPConn); ok {
		_ = uc.SetReadBuffer(4 << 20)
	}
	ra, err := net.ResolveUDPAddr("udp", r.cfg.Gateway)
	if err != nil {
		c.Close()
		return fmt.Errorf("sipfuzz: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			r.response(append([]byte(nil), buf[:n]...), func(a []byte) { _, _ = c.WriteTo(a, ra) })
		}
	}()
	var sendErr error
	r.sendLoop(ctx, seeds, c.LocalAddr().String(), func(b []byte, _ bool) bool {
		if _, err := c.WriteTo(b, ra); err != nil {
			sendErr = err
			return false
		}
		return true
	})
	c.Close()
	<-done
	return sendErr
}

// tcpConn is one TCP connection of a run and its reader.
type tcpConn struct {
	c    net.Conn
	done chan struct{}
}

// dial opens a connection from LocalIP (port local, 0 for any) whose reader hands
// responses to r (when record) and drains the rest.
func (r *run) dial(local int, record bool) (*tcpConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(r.cfg.LocalIP), Port: local}}
	c, err := d.Dial("tcp", r.cfg.Gateway)
	if err != nil {
		return nil, fmt.Errorf("sipfuzz: %w", err)
	}
	tc := &tcpConn{c: c, done: make(chan struct{})}
	go func() {
		defer close(tc.done)
		// The edge's framer reads the gateway's stream as the gateway reads ours: a
		// response copies the request's odd headers, which a stricter reader refuses.
		var f edge.Framer
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			err = f.Feed(buf[:n], func(msg []byte, _ *edge.Message) {
				if record {
					r.response(append([]byte(nil), msg...), func(a []byte) { _, _ = c.Write(a) })
				}
			})
			if err != nil {
				r.mu.Lock()
				r.res.BadStream++
				if r.res.BadStreamSample == "" && record {
					r.res.BadStreamSample = fmt.Sprintf("%v: %q", err, buf[:min(n, 600)])
				}
				r.mu.Unlock()
				return
			}
		}
	}()
	return tc, nil
}

// tcp runs over a clean connection (well-formed requests; its local address is fixed,
// which their Via names) and a dirty one (the rest).
func (r *run) tcp(ctx context.Context, seeds []Seed) error {
	clean, err := r.dial(0, true)
	if err != nil {
		return err
	}
	local := clean.c.LocalAddr().(*net.TCPAddr)
	dirty, err := r.dial(0, false)
	if err != nil {
		clean.c.Close()
		return err
	}
	var runErr error
	var last [][]byte // the last well-formed requests, for the report of a closed connection
	r.sendLoop(ctx, seeds, local.String(), func(b []byte, wellFormed bool) bool {
		if wellFormed {
			last = append(last, b)
			if len(last) > 3 {
				last = last[1:]
			}
			if _, err := clean.c.Write(b); err != nil {
				// The gateway closed the connection of well-formed requests: a finding.
				runErr = fmt.Errorf("sipfuzz: the gateway closed the connection of well-formed requests: %w; the last sent:\n%s",
					err, bytes.Join(last, []byte("\n----\n")))
				return false
			}
			return true
		}
		// Its Via names the dirty connection: sipgo sends a response over TCP on the
		// connection of the Via's address, which must not be the clean one. The port is
		// replaced wherever it is, since a mutation may split the address in ways
		// sipgo's Via parser still reads as the clean one ("127.0.0.1\n:37335").
		b = bytes.ReplaceAll(b, []byte(local.String()), []byte(dirty.c.LocalAddr().String()))
		b = bytes.ReplaceAll(b, []byte(strconv.Itoa(local.Port)), []byte(strconv.Itoa(dirty.c.LocalAddr().(*net.TCPAddr).Port)))
		if _, err := dirty.c.Write(b); err != nil {
			dirty.c.Close()
			<-dirty.done
			r.mu.Lock()
			r.res.Reconnects++
			r.mu.Unlock()
			if dirty, err = r.dial(0, false); err != nil {
				runErr = err
				return false
			}
		}
		return true
	})
	for _, tc := range []*tcpConn{clean, dirty} {
		tc.c.Close()
		<-tc.done
	}
	if runErr != nil && !errors.Is(runErr, net.ErrClosed) {
		return runErr
	}
	return nil
}
