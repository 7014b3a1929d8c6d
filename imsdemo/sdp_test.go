package imsdemo

import (
	"net/netip"
	"strings"
	"testing"

	"dsmgw/imsdemo/mixer"
)

const offerGateway = "v=0\r\no=dsmgw 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n" +
	"m=audio 20000 RTP/AVP 8 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n"

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sdp     string
		codec   mixer.Codec
		pt      int
		eventPT int
		dir     Direction
		remote  string
		answer  []string // lines the answer must carry
		err     error
	}{
		{name: "the gateway's offer: the offerer's first law", sdp: offerGateway, codec: mixer.PCMA, pt: 8, eventPT: 101,
			dir: SendRecv, remote: "10.0.0.5:20000",
			answer: []string{"m=audio 31000 RTP/AVP 8 101", "a=rtpmap:8 PCMA/8000", "a=rtpmap:101 telephone-event/8000", "a=sendrecv", "c=IN IP4 192.0.2.1"}},
		{name: "hold with sendonly", sdp: strings.Replace(offerGateway, "a=sendrecv", "a=sendonly", 1),
			codec: mixer.PCMA, pt: 8, eventPT: 101, dir: SendOnly, remote: "10.0.0.5:20000", answer: []string{"a=recvonly"}},
		{name: "old-style hold: c=0.0.0.0", sdp: strings.Replace(offerGateway, "c=IN IP4 10.0.0.5", "c=IN IP4 0.0.0.0", 1),
			codec: mixer.PCMA, pt: 8, eventPT: 101, dir: SendRecv, remote: ""},
		{name: "session-level direction",
			sdp:   "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n",
			codec: mixer.PCMU, pt: 0, eventPT: -1, dir: Inactive, remote: "1.2.3.4:4000",
			answer: []string{"m=audio 31000 RTP/AVP 0\r\n", "a=inactive"}},
		{name: "video refused, audio taken, media-level c=",
			sdp: "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nc=IN IP4 1.2.3.4\r\na=rtpmap:96 VP8/90000\r\n" +
				"m=audio 4000 RTP/AVP 9 0\r\nc=IN IP4 5.6.7.8\r\na=rtpmap:9 G722/8000\r\n",
			codec: mixer.PCMU, pt: 0, eventPT: -1, dir: SendRecv, remote: "5.6.7.8:4000",
			answer: []string{"m=video 0 RTP/AVP 96\r\n", "m=audio 31000 RTP/AVP 0\r\n"}},
		{name: "IPv6", sdp: "v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
			codec: mixer.PCMU, pt: 0, eventPT: -1, dir: SendRecv, remote: "[2001:db8::1]:4000"},
		{name: "no G.711", sdp: "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n", err: ErrNotAcceptable},
		{name: "G.711 under a dynamic payload type",
			sdp: "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 PCMU/8000\r\n", err: ErrNotAcceptable},
		{name: "SRTP only", sdp: "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/SAVP 0\r\n", err: ErrNotAcceptable},
		{name: "audio refused by port 0", sdp: "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 0 RTP/AVP 0\r\n", err: ErrNotAcceptable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sd, err := parseSDP([]byte(tc.sdp))
			if err != nil {
				t.Fatal(err)
			}
			n, err := negotiate(sd)
			if err != tc.err {
				t.Fatalf("negotiate: %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if n.codec != tc.codec || n.pt != tc.pt || n.eventPT != tc.eventPT || n.dir != tc.dir {
				t.Fatalf("negotiated %+v", n)
			}
			if tc.remote == "" && n.remote.IsValid() || tc.remote != "" && n.remote != netip.MustParseAddrPort(tc.remote) {
				t.Fatalf("remote %v, want %q", n.remote, tc.remote)
			}
			ans := string(answerSDP(sd, n, floorAnswer{}, "192.0.2.1", 31000, 7, 2))
			for _, l := range tc.answer {
				if !strings.Contains(ans, l) {
					t.Fatalf("answer lacks %q:\n%s", l, ans)
				}
			}
			back, err := parseSDP([]byte(ans))
			if err != nil || len(back.media) != len(sd.media) {
				t.Fatalf("answer does not parse back with as many streams: %v\n%s", err, ans)
			}
		})
	}
}

func TestParseSDPRefusesBadBodies(t *testing.T) {
	for name, body := range map[string]string{
		"empty":          "",
		"not SDP":        "hello world",
		"no version":     "c=IN IP4 1.2.3.4\r\n",
		"version 1":      "v=1\r\n",
		"bad c= address": "v=0\r\nc=IN IP4 999.1.1.1\r\n",
		"bad c= type":    "v=0\r\nc=IN XX 1.1.1.1\r\n",
		"bad port":       "v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
		"short m=":       "v=0\r\nm=audio 4000\r\n",
		"too large":      "v=0\r\n" + strings.Repeat("a=x\r\n", 5000),
		"too many m=":    "v=0\r\n" + strings.Repeat("m=audio 4000 RTP/AVP 0\r\n", 17),
	} {
		if _, err := parseSDP([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParseSDP: any body parses or is refused; what parses and negotiates gives an
// answer that parses back with the same number of streams.
func FuzzParseSDP(f *testing.F) {
	f.Add([]byte(offerGateway))
	f.Add([]byte("v=0\r\nc=IN IP6 ::1\r\nm=audio 1 RTP/AVP 0 8\r\na=inactive\r\nm=video 2 RTP/AVP 96\r\n"))
	f.Add([]byte("v=0\nm=audio 4000/2 RTP/AVPF 8\na=rtpmap:8 pcma/8000/1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := parseSDP(b)
		if err != nil {
			return
		}
		n, err := negotiate(sd)
		if err != nil {
			return
		}
		ans := answerSDP(sd, n, floorAnswer{}, "127.0.0.1", 31000, 1, 1)
		back, err := parseSDP(ans)
		if err != nil || len(back.media) != len(sd.media) {
			t.Fatalf("answer does not parse back: %v\n%q\nfrom\n%q", err, ans, b)
		}
		if _, err := negotiate(back); err != nil {
			t.Fatalf("our answer is not acceptable to ourselves: %v\n%q", err, ans)
		}
	})
}
