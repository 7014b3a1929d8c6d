package floorctl

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParamsStringAndParse(t *testing.T) {
	tests := []struct {
		in   string
		want Params
		out  string
	}{
		{"mc_queueing", Params{Queueing: true}, "mc_queueing"},
		{"mc_queueing;mc_priority=5", Params{Queueing: true, Priority: 5}, "mc_queueing;mc_priority=5"},
		{" mc_priority=255 ; mc_queueing ", Params{Queueing: true, Priority: 255}, "mc_queueing;mc_priority=255"},
		{"mc_granted;mc_implicit_request", Params{Granted: true, ImplicitRequest: true}, "mc_granted;mc_implicit_request"},
		{"mc_queueing;mc_future=1;x", Params{Queueing: true}, "mc_queueing"},
		{"", Params{}, ""},
		{"mc_queueing;;", Params{Queueing: true}, "mc_queueing"},
	}
	for _, tt := range tests {
		got, err := ParseParams(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseParams(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if s := got.String(); s != tt.out {
			t.Errorf("String() = %q, want %q", s, tt.out)
		}
	}
	for _, bad := range []string{"mc_priority=0", "mc_priority=256", "mc_priority", "mc_priority=x",
		"mc_priority=-1", strings.Repeat("x;", 20), strings.Repeat("x", 2000)} {
		if _, err := ParseParams(bad); !errors.Is(err, ErrBadSDP) {
			t.Errorf("ParseParams(%.40q): %v, want ErrBadSDP", bad, err)
		}
	}
}

func TestAppendMediaOffer(t *testing.T) {
	got := string(AppendMedia(nil, 20002, Params{Queueing: true, Priority: 5}))
	want := "m=application 20002 udp MCPTT\r\na=fmtp:MCPTT mc_queueing;mc_priority=5\r\n"
	if got != want {
		t.Fatalf("AppendMedia = %q, want %q", got, want)
	}
	if got := string(AppendMedia([]byte("x\r\n"), 9, Params{})); got != "x\r\nm=application 9 udp MCPTT\r\n" {
		t.Fatalf("AppendMedia without params = %q", got)
	}
}

func TestAnswerParams(t *testing.T) {
	tests := []struct {
		offer, local, want Params
	}{
		{Params{Queueing: true, Priority: 9}, Params{Queueing: true, Priority: 5}, Params{Queueing: true, Priority: 5}},
		{Params{Queueing: true, Priority: 3}, Params{Queueing: true, Priority: 5}, Params{Queueing: true, Priority: 3}},
		{Params{Queueing: true}, Params{Priority: 5}, Params{}},
		{Params{Priority: 7, Granted: true, ImplicitRequest: true}, Params{}, Params{Priority: 7}},
	}
	for _, tt := range tests {
		if got := AnswerParams(tt.offer, tt.local); got != tt.want {
			t.Errorf("AnswerParams(%+v, %+v) = %+v, want %+v", tt.offer, tt.local, got, tt.want)
		}
	}
}

// answerSDP is what the demo conference server answers to a page's offer: audio, then
// the floor control channel with its own port.
const answerSDP = "v=0\r\n" +
	"o=- 1 1 IN IP4 192.0.2.1\r\n" +
	"s=-\r\n" +
	"c=IN IP4 192.0.2.1\r\n" +
	"t=0 0\r\n" +
	"m=audio 30000 RTP/AVP 0\r\n" +
	"c=IN IP4 192.0.2.9\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=fmtp:0 mc_queueing\r\n" +
	"m=application 30002 udp MCPTT\r\n" +
	"a=fmtp:MCPTTX mc_granted\r\n" +
	"a=fmtp:MCPTT mc_queueing;mc_priority=5\r\n" +
	"a=fmtp:MCPTT mc_granted\r\n" +
	"m=application 30004 udp MCPTT\r\n" +
	"c=IN IP4 192.0.2.7\r\n"

func TestParseMedia(t *testing.T) {
	tests := []struct {
		name string
		sdp  string
		want Media
	}{
		{"session address, first fmtp", answerSDP, Media{Port: 30002, Addr: netip.MustParseAddr("192.0.2.1"),
			Params: Params{Queueing: true, Priority: 5}, HasFmtp: true}},
		{"media address, LF line ends, port count, IPv6",
			"v=0\nc=IN IP6 2001:db8::1\nm=application 4000/2 UDP MCPTT\nc=IN IP6 2001:db8::2\n",
			Media{Port: 4000, Addr: netip.MustParseAddr("2001:db8::2")}},
		{"multicast TTL", "c=IN IP4 233.252.0.1/127\nm=application 5000 udp MCPTT\na=fmtp:MCPTT\n",
			Media{Port: 5000, Addr: netip.MustParseAddr("233.252.0.1"), HasFmtp: true}},
		{"no address", "m=application 5000 udp MCPTT\n", Media{Port: 5000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMedia([]byte(tt.sdp))
			if err != nil || got != tt.want {
				t.Fatalf("ParseMedia = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	refused := []struct {
		name string
		sdp  string
		want error
	}{
		{"no floor control", "v=0\r\nm=audio 30000 RTP/AVP 0\r\n", ErrNoFloorControl},
		{"other format", "m=application 9 udp BFCP\r\n", ErrNoFloorControl},
		{"TBCP over RTP", "m=application 9 RTP/AVP MCPTT\r\n", ErrNoFloorControl},
		{"port 0", "m=application 0 udp MCPTT\r\n", ErrNoFloorControl},
		{"bad port", "m=application 70000 udp MCPTT\r\n", ErrBadSDP},
		{"bad address", "m=application 9 udp MCPTT\r\nc=IN IP4 ::1\r\n", ErrBadSDP},
		{"bad connection line", "c=IN\r\nm=application 9 udp MCPTT\r\n", ErrBadSDP},
		{"bad priority", "m=application 9 udp MCPTT\r\na=fmtp:MCPTT mc_priority=300\r\n", ErrBadSDP},
		{"too large", strings.Repeat("a=x\r\n", 4000), ErrBadSDP},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseMedia([]byte(tt.sdp)); !errors.Is(err, tt.want) {
				t.Fatalf("ParseMedia: %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzParseParams checks that what ParseParams accepts prints and parses back the same.
func FuzzParseParams(f *testing.F) {
	for _, s := range []string{"mc_queueing", "mc_queueing;mc_priority=5", "mc_granted;mc_implicit_request",
		" mc_priority=255 ;x=1", "mc_priority=0", ";;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseParams(s)
		if err != nil {
			return
		}
		again, err := ParseParams(p.String())
		if err != nil || again != p {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, p, p.String(), again, err)
		}
	})
}

// FuzzParseMedia checks that ParseMedia never panics and that a description it accepts
// survives AppendMedia and a second parse.
func FuzzParseMedia(f *testing.F) {
	f.Add([]byte(answerSDP))
	f.Add([]byte("v=0\nc=IN IP6 2001:db8::1\nm=application 4000/2 UDP MCPTT\nc=IN IP6 2001:db8::2\n"))
	f.Add([]byte("m=application 0 udp MCPTT\r\n"))
	f.Fuzz(func(t *testing.T, sdp []byte) {
		m, err := ParseMedia(sdp)
		if err != nil {
			return
		}
		again, err := ParseMedia(AppendMedia(nil, m.Port, m.Params))
		if err != nil || again.Port != m.Port || again.Params != m.Params {
			t.Fatalf("%+v → %+v, %v", m, again, err)
		}
	})
}
