package imsdemo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"dsmgw/floorctl"
	"dsmgw/imsdemo/mixer"
	"dsmgw/internal/testpeer"
)

// testPhone is a SIP phone written for the tests: sipgo for SIP, a UDP socket that sends
// a tone in real time (20 ms packets) and keeps the decoded audio it receives.
type testPhone struct {
	t       testing.TB
	name    string
	display string
	codec   mixer.Codec
	freq    float64
	proxy   string // "host:port" of an outbound proxy, or ""
	cli     *sipgo.Client
	dua     *sipgo.DialogUA
	addr    string // our SIP address
	rtp     *net.UDPConn

	sess   *sipgo.DialogClientSession
	remote netip.AddrPort
	byeC   chan *sip.Request
	notes  chan *sip.Request
	wg     sync.WaitGroup

	// mangle, when set, rewrites the INVITE's offer (to test refusals).
	mangle func([]byte) []byte
	// floor, when set, makes the phone an MCPTT client: its offer carries the floor
	// control stream, and the answer's floor port goes to the client.
	floor *floorClient

	mu      sync.Mutex
	heard   []int16
	pkts    []rtp.Header
	sending bool
}

// newPhone starts a phone's SIP listener and RTP socket on loopback.
func newPhone(t testing.TB, name string, codec mixer.Codec, freq float64, proxy string) *testPhone {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler) // sipgo's transport warnings are not the test's
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(name), sipgo.WithUserAgentHostname("test.invalid"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(quiet)))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	conn, tcp := listenPair(t)
	port := conn.LocalAddr().(*net.UDPAddr).Port
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(port),
		sipgo.WithClientConnectionAddr(conn.LocalAddr().String()), sipgo.WithClientLogger(quiet))
	rtpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	p := &testPhone{t: t, name: name, display: strings.ToUpper(name[:1]) + name[1:], codec: codec, freq: freq,
		proxy: proxy, cli: cli, addr: conn.LocalAddr().String(), rtp: rtpConn,
		byeC: make(chan *sip.Request, 4), notes: make(chan *sip.Request, 64)}
	p.dua = &sipgo.DialogUA{Client: cli, ContactHDR: sip.ContactHeader{
		Address: sip.Uri{Scheme: "sip", User: name, Host: "127.0.0.1", Port: port}}}
	// Queue a request before answering it: the server sends the next NOTIFY only after
	// our 200, and each request runs on its own goroutine, so answering first could let
	// the next one overtake it in the queue.
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.byeC <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		p.notes <- req
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	go func() { _ = srv.ServeUDP(conn) }()
	go func() { _ = srv.ServeTCP(tcp) }() // large NOTIFYs come over TCP
	// Requests go out from the listener, which sipgo knows only once ServeUDP has
	// registered it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if c, err := srv.TransportLayer().GetConnection("udp", conn.LocalAddr().String()); err == nil {
			_, _ = c.TryClose()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: sipgo does not serve its listener", name)
		}
	}
	t.Cleanup(func() {
		p.mu.Lock()
		p.sending = false
		p.mu.Unlock()
		rtpConn.Close()
		conn.Close()
		tcp.Close()
		p.wg.Wait()
		ua.Close()
	})
	p.wg.Add(1)
	go func() { defer p.wg.Done(); p.receive() }()
	return p
}

// aor is the phone's address of record.
func (p *testPhone) aor() string { return "sip:" + p.name + "@test.invalid" }

// offer is the phone's SDP: its codec, telephone-event, and a direction.
func (p *testPhone) offer(dir Direction) []byte {
	port := p.rtp.LocalAddr().(*net.UDPAddr).Port
	pt := p.codec.PayloadType()
	b := []byte(fmt.Sprintf("v=0\r\no=- 1 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP %d 101\r\na=rtpmap:%d %s/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-16\r\na=ptime:20\r\na=%s\r\n", time.Now().UnixNano()%1e6, port, pt, pt, p.codec, dir))
	if p.floor != nil {
		b = floorctl.AppendMedia(b, p.floor.port(), floorctl.Params{Queueing: true, Priority: 5})
	}
	return b
}

// routeHeaders returns the pre-loaded Route to the outbound proxy, if any.
func (p *testPhone) routeHeaders() []sip.Header {
	if p.proxy == "" {
		return nil
	}
	return []sip.Header{sip.NewHeader("Route", "<sip:"+p.proxy+";lr>")}
}

// call INVITEs target and starts the tone once answered; it returns the status code.
func (p *testPhone) call(target string) int {
	p.t.Helper()
	var uri sip.Uri
	if err := sip.ParseUri(target, &uri); err != nil {
		p.t.Fatal(err)
	}
	hdrs := append(p.routeHeaders(),
		&sip.FromHeader{DisplayName: p.display, Address: sip.Uri{Scheme: "sip", User: p.name, Host: "test.invalid"},
			Params: tagParams(sip.GenerateTagN(8))},
		sip.NewHeader("Content-Type", "application/sdp"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := p.offer(SendRecv)
	if p.mangle != nil {
		body = p.mangle(body)
	}
	sess, err := p.dua.Invite(ctx, uri, body, hdrs...)
	if err != nil {
		p.t.Fatalf("%s: INVITE: %v", p.name, err)
	}
	if err := sess.WaitAnswer(ctx, sipgo.AnswerOptions{}); err != nil {
		if e, ok := err.(*sipgo.ErrDialogResponse); ok {
			return e.Res.StatusCode
		}
		p.t.Fatalf("%s: INVITE answer: %v", p.name, err)
	}
	p.sess = sess
	p.useAnswer(sess.InviteResponse.Body())
	if p.floor != nil {
		p.floor.useAnswer(sess.InviteResponse.Body())
	}
	if err := sess.Ack(ctx); err != nil {
		p.t.Fatalf("%s: ACK: %v", p.name, err)
	}
	p.mu.Lock()
	start := !p.sending
	p.sending = true
	p.mu.Unlock()
	if start {
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.send() }()
	}
	return 200
}

func (p *testPhone) useAnswer(body []byte) {
	p.t.Helper()
	sd, err := parseSDP(body)
	if err != nil {
		p.t.Fatalf("%s: answer: %v\n%s", p.name, err, body)
	}
	n, err := negotiate(sd)
	if err != nil || n.codec != p.codec {
		p.t.Fatalf("%s: answer codec %v (want %v): %v\n%s", p.name, n.codec, p.codec, err, body)
	}
	p.mu.Lock()
	p.remote = n.remote
	p.mu.Unlock()
}

// reinvite changes the direction of the session (hold: sendonly or inactive).
func (p *testPhone) reinvite(dir Direction) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.INVITE, p.sess.InviteResponse.Contact().Address)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(p.offer(dir))
	res, err := p.sess.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		p.t.Fatalf("%s: re-INVITE: %v %v", p.name, res, err)
	}
	if !strings.Contains(string(res.Body()), "a="+string(dir.reverse())) {
		p.t.Fatalf("%s: re-INVITE %s answered\n%s", p.name, dir, res.Body())
	}
	ack := sip.NewRequest(sip.ACK, p.sess.InviteResponse.Contact().Address)
	if err := p.sess.WriteRequest(ack); err != nil {
		p.t.Fatalf("%s: ACK of re-INVITE: %v", p.name, err)
	}
}

// hangup sends BYE.
func (p *testPhone) hangup() {
	p.t.Helper()
	p.mu.Lock()
	p.sending = false
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.sess.Bye(ctx); err != nil {
		p.t.Fatalf("%s: BYE: %v", p.name, err)
	}
}

// send plays the tone in 20 ms packets, on absolute times, while sending is on.
func (p *testPhone) send() {
	var frame [mixer.FrameSamples]int16
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: p.codec.PayloadType(), SSRC: uint32(len(p.name)) * 7919},
		Payload: make([]byte, mixer.FrameBytes)}
	start := time.Now()
	for n := 0; ; n++ {
		time.Sleep(time.Until(start.Add(time.Duration(n) * mixer.FrameDuration)))
		p.mu.Lock()
		on, dst := p.sending, p.remote
		p.mu.Unlock()
		if !on {
			return
		}
		testpeer.Sine(frame[:], mixer.SampleRate, p.freq, 6000, n*mixer.FrameSamples)
		for i, s := range frame {
			if p.codec == mixer.PCMA {
				pkt.Payload[i] = g711.EncodeAlawFrame(s)
			} else {
				pkt.Payload[i] = g711.EncodeUlawFrame(s)
			}
		}
		pkt.SequenceNumber, pkt.Timestamp = uint16(n), uint32(n*mixer.FrameSamples)
		b, _ := pkt.Marshal()
		if _, err := p.rtp.WriteToUDPAddrPort(b, dst); err != nil && strings.Contains(err.Error(), "closed") {
			return
		}
	}
}

// receive decodes every packet that arrives.
func (p *testPhone) receive() {
	buf := make([]byte, 1500)
	for {
		n, err := p.rtp.Read(buf)
		if err != nil {
			return
		}
		var pk rtp.Packet
		if pk.Unmarshal(buf[:n]) != nil {
			continue
		}
		p.mu.Lock()
		p.pkts = append(p.pkts, pk.Header)
		for _, b := range pk.Payload {
			if pk.PayloadType == 8 {
				p.heard = append(p.heard, g711.DecodeAlawFrame(b))
			} else {
				p.heard = append(p.heard, g711.DecodeUlawFrame(b))
			}
		}
		p.mu.Unlock()
	}
}

// listen forgets what was heard so far and returns once at least d of new audio came.
func (p *testPhone) listen(d time.Duration) []int16 {
	p.t.Helper()
	p.mu.Lock()
	p.heard, p.pkts = nil, nil
	p.mu.Unlock()
	want := int(d / time.Second * mixer.SampleRate)
	deadline := time.Now().Add(d + 20*time.Second)
	for {
		p.mu.Lock()
		n := len(p.heard)
		out := append([]int16(nil), p.heard...)
		p.mu.Unlock()
		if n >= want {
			return out
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %d samples heard, want %d", p.name, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// packets returns the headers of the packets received since the last listen.
func (p *testPhone) packets() []rtp.Header {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]rtp.Header(nil), p.pkts...)
}

// waitBye waits for a BYE from the server.
func (p *testPhone) waitBye(timeout time.Duration) *sip.Request {
	p.t.Helper()
	select {
	case req := <-p.byeC:
		p.mu.Lock()
		p.sending = false
		p.mu.Unlock()
		return req
	case <-time.After(timeout):
		p.t.Fatalf("%s: no BYE from the server", p.name)
		return nil
	}
}

func tagParams(tag string) sip.HeaderParams {
	p := sip.NewParams()
	p.Add("tag", tag)
	return p
}

// listenPair binds UDP and TCP on one loopback port (a SIP phone's listeners).
func listenPair(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", u.LocalAddr().String())
		if err == nil {
			return u, l
		}
		u.Close()
	}
	t.Fatal("no port free for both UDP and TCP")
	return nil, nil
}
