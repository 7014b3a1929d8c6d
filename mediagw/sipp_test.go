package mediagw

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
)

// RTP sent over the WebSocket crosses the gateway to sipp (the far end, found through a
// real INVITE/200/ACK exchange with sipp's built-in UAS), is echoed by sipp's -rtp_echo,
// and comes back over the WebSocket unchanged.
func TestSippEcho(t *testing.T) {
	t.Parallel()
	sipp := testpeer.StartSipp(t, testpeer.SippOptions{Scenario: "uas", RTPEcho: true})
	e := newEnv(t, nil)
	ctx := context.Background()
	lt, err := e.cl.AddLocal(ctx, AddLocalRequest{Owner: "sipp-test", CallID: "sipp-echo-1"})
	if err != nil {
		t.Fatal(err)
	}
	ua := newMiniUAC(t, sipp.Addr)
	answer := ua.invite(t, lt.Address, lt.RTPPort)
	remote := parseSDPAnswer(t, answer)
	if remote.RTPPort != sipp.MediaPort {
		t.Fatalf("sipp answered media port %d, started with %d", remote.RTPPort, sipp.MediaPort)
	}
	mu, err := e.cl.AddRemote(ctx, lt.ID, remote)
	if err != nil {
		t.Fatal(err)
	}
	ws := dialWS(t, mu.URL)
	const n = 50
	for i := 0; i < n; i++ {
		pkt := rtpPacket(0, uint16(i), uint32(160*i), 0x5151, 160)
		sendWS(t, ws, pkt)
		if got := recvWS(t, ws); !bytes.Equal(got, pkt) {
			t.Fatalf("echo %d differs:\n got %x\nwant %x", i, got, pkt)
		}
	}
	eventually(t, "counted", func() bool {
		cs := mustGet(t, e, lt.ID).Counters
		return cs.UDPToWS.RTPPackets == n && cs.WSToUDP.RTPPackets == n
	})
	tm := mustGet(t, e, lt.ID)
	if tm.Counters.WSToUDP.RTPPackets != n || tm.Counters.UDPToWS.RTPPackets != n || len(tm.Counters.Drops) != 0 {
		t.Errorf("counters %+v", tm.Counters)
	}
	if tm.LatchedRTP != "127.0.0.1:"+strconv.Itoa(sipp.MediaPort) {
		t.Errorf("latched %q", tm.LatchedRTP)
	}
	ua.bye(t)
	if err := e.cl.Delete(ctx, lt.ID); err != nil {
		t.Fatal(err)
	}
}

// miniUAC is just enough of a SIP UAC over UDP to set up and end one call with sipp's
// built-in UAS. The AS adapter is the real SIP UA; this only finds sipp's media port the
// honest way.
type miniUAC struct {
	conn            *net.UDPConn
	target          string
	callID, fromTag string
	toTag           string
	local           string
}

func newMiniUAC(t *testing.T, target string) *miniUAC {
	raddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &miniUAC{conn: c, target: target, callID: fmt.Sprintf("mgw-%d@127.0.0.1", time.Now().UnixNano()),
		fromTag: "ft1", local: c.LocalAddr().String()}
}

func (u *miniUAC) request(method string, cseq int, branch, body string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:service@%s SIP/2.0\r\n", method, u.target)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n", u.local, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:mgw@%s>;tag=%s\r\n", u.local, u.fromTag)
	to := fmt.Sprintf("<sip:service@%s>", u.target)
	if u.toTag != "" {
		to += ";tag=" + u.toTag
	}
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", u.callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:mgw@%s>\r\n", u.local)
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// recv returns the next response's status code, To tag and body.
func (u *miniUAC) recv(t *testing.T) (int, string, string) {
	t.Helper()
	buf := make([]byte, 8192)
	_ = u.conn.SetReadDeadline(time.Now().Add(deadline))
	n, err := u.conn.Read(buf)
	if err != nil {
		t.Fatalf("sip read: %v", err)
	}
	msg := string(buf[:n])
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	f := strings.Fields(lines[0])
	if len(f) < 2 || f[0] != "SIP/2.0" {
		t.Fatalf("not a SIP response: %q", lines[0])
	}
	code, _ := strconv.Atoi(f[1])
	tag := ""
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok && (strings.EqualFold(k, "To") || k == "t") {
			if _, tv, ok := strings.Cut(v, ";tag="); ok {
				tag, _, _ = strings.Cut(tv, ";")
			}
		}
	}
	return code, tag, body
}

func (u *miniUAC) send(t *testing.T, msg string) {
	t.Helper()
	if _, err := u.conn.Write([]byte(msg)); err != nil {
		t.Fatalf("sip write: %v", err)
	}
}

// invite offers PCMU at addr:port and returns the 200's SDP after sending the ACK.
func (u *miniUAC) invite(t *testing.T, addr string, port int) string {
	t.Helper()
	sdp := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0 101\r\n"+
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n", addr, addr, port)
	u.send(t, u.request("INVITE", 1, "inv1", sdp))
	for {
		code, tag, body := u.recv(t)
		if code < 200 {
			continue
		}
		if code != 200 {
			t.Fatalf("INVITE answered %d", code)
		}
		u.toTag = tag
		u.send(t, u.request("ACK", 1, "ack1", ""))
		return body
	}
}

func (u *miniUAC) bye(t *testing.T) {
	t.Helper()
	u.send(t, u.request("BYE", 2, "bye1", ""))
	if code, _, _ := u.recv(t); code != 200 {
		t.Fatalf("BYE answered %d", code)
	}
}

// parseSDPAnswer reads c= and the audio m= line of an answer into a Remote.
func parseSDPAnswer(t *testing.T, sdp string) Remote {
	t.Helper()
	r := Remote{}
	for _, l := range strings.Split(sdp, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "c=IN IP4 "):
			r.Address = strings.TrimPrefix(l, "c=IN IP4 ")
		case strings.HasPrefix(l, "m=audio "):
			f := strings.Fields(l)
			r.RTPPort, _ = strconv.Atoi(f[1])
			for _, pt := range f[3:] {
				v, _ := strconv.Atoi(pt)
				name := map[int]string{0: "PCMU", 8: "PCMA"}[v]
				if name == "" {
					name = "unknown"
				}
				r.PayloadTypes = append(r.PayloadTypes, PayloadType{PT: uint8(v), Name: name, ClockRate: 8000})
			}
		}
	}
	if r.Address == "" || r.RTPPort == 0 || len(r.PayloadTypes) == 0 {
		t.Fatalf("sdp answer without c=/m=audio: %q", sdp)
	}
	return r
}
