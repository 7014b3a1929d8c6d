package sdp

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNegotiateOffer(t *testing.T) {
	for name, tc := range map[string]struct {
		sdp      string
		wantErr  error
		wantPTs  []uint8
		wantDir  Direction
		wantPort int
	}{
		"pcmu and events": {sdp: "v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n",
			wantPTs: []uint8{0, 101}, wantDir: SendRecv, wantPort: 4000},
		"hold sendonly": {sdp: "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\na=sendonly\r\n",
			wantPTs: []uint8{8}, wantDir: RecvOnly, wantPort: 4000},
		"old hold 0.0.0.0": {sdp: "v=0\nc=IN IP4 0.0.0.0\nm=audio 4000 RTP/AVP 0\n",
			wantPTs: []uint8{0}, wantDir: RecvOnly, wantPort: 0},
		"session level inactive": {sdp: "v=0\nc=IN IP4 10.0.0.1\na=inactive\nm=audio 4000 RTP/AVP 0\n",
			wantPTs: []uint8{0}, wantDir: Inactive, wantPort: 4000},
		"video first": {sdp: "v=0\nc=IN IP4 10.0.0.1\nm=video 5000 RTP/AVP 96\nm=audio 4000 RTP/AVP 18 0\n",
			wantPTs: []uint8{0}, wantDir: SendRecv, wantPort: 4000},
		"dynamic pcma name": {sdp: "v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 97\na=rtpmap:97 pcma/8000\n",
			wantPTs: []uint8{97}, wantDir: SendRecv, wantPort: 4000},
		"no common codec": {sdp: "v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 18 9\n", wantErr: ErrNoCodec},
		"only events":     {sdp: "v=0\nc=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 101\na=rtpmap:101 telephone-event/8000\n", wantErr: ErrNoCodec},
		"no audio":        {sdp: "v=0\nc=IN IP4 10.0.0.1\nm=video 4000 RTP/AVP 96\n", wantErr: ErrNoCodec},
		"hostname conn":   {sdp: "v=0\nc=IN IP4 host.example\nm=audio 4000 RTP/AVP 0\n", wantErr: ErrMalformed},
		"no v line":       {sdp: "o=a 1 1 IN IP4 1.2.3.4\n", wantErr: ErrMalformed},
		"bad port":        {sdp: "v=0\nm=audio 99999 RTP/AVP 0\n", wantErr: ErrMalformed},
		"garbage line":    {sdp: "v=0\nthis is not sdp\n", wantErr: ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			sd, err := Parse([]byte(tc.sdp))
			var r Remote
			if err == nil {
				_, r, err = NegotiateOffer(sd)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var pts []uint8
			for _, p := range r.Payloads {
				pts = append(pts, p.PT)
			}
			if string(pts) != string(tc.wantPTs) || r.Direction != tc.wantDir || r.Port != tc.wantPort {
				t.Fatalf("got pts %v dir %s port %d", pts, r.Direction, r.Port)
			}
		})
	}
}

func TestOfferAnswerRoundTrip(t *testing.T) {
	offer := Offer(Origin{Sess: 7, Version: 1}, "dsmgw", "192.0.2.1", 20000, "PCMA", SendRecv)
	sd, err := Parse(offer)
	if err != nil {
		t.Fatal(err)
	}
	if got := sd.Media[0].Formats; strings.Join(got, " ") != "8 0 101" {
		t.Fatalf("offer formats %v (PCMA preferred first)", got)
	}
	// Answer our own offer as a peer would, on hold.
	sd.Media[0].Direction = SendOnly
	chosen, r, err := NegotiateOffer(sd)
	if err != nil {
		t.Fatal(err)
	}
	ans := Answer(Origin{Sess: 9, Version: 2}, "dsmgw", "192.0.2.1", 20000, sd, chosen, r)
	ad, err := Parse(ans)
	if err != nil {
		t.Fatal(err)
	}
	got, err := NegotiateAnswer(ad)
	if err != nil {
		t.Fatal(err)
	}
	if got.Direction != SendOnly || got.Addr != "192.0.2.1" || got.Port != 20000 || got.Payloads[0].PT != 8 {
		t.Fatalf("answer read back as %+v", got)
	}
}

func TestAnswerRejectsExtraStreams(t *testing.T) {
	sd, err := Parse([]byte("v=0\nc=IN IP4 10.0.0.1\nm=video 5000 RTP/AVP 96\nm=audio 4000 RTP/AVP 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	chosen, r, err := NegotiateOffer(sd)
	if err != nil {
		t.Fatal(err)
	}
	ad, err := Parse(Answer(Origin{}, "u", "10.0.0.2", 3000, sd, chosen, r))
	if err != nil {
		t.Fatal(err)
	}
	if len(ad.Media) != 2 || ad.Media[0].Port != 0 || ad.Media[1].Port != 3000 {
		t.Fatalf("answer media %+v", ad.Media)
	}
}

// FuzzParse checks that no SDP body panics the parser or the negotiation, and that
// whatever is accepted yields an answer we can parse again.
func FuzzParse(f *testing.F) {
	f.Add([]byte("v=0\r\no=a 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n"))
	f.Add([]byte("v=0\nc=IN IP6 ::1\nm=audio 0 RTP/AVP 0\n"))
	f.Add([]byte("v=0\nm=audio 1 RTP/SAVP 0\nc=IN IP4 1.2.3.4/127\na=rtpmap:0\n"))
	for _, name := range []string{"offer_pcmu.sdp"} {
		if b, err := os.ReadFile("testdata/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		_, _ = NegotiateAnswer(sd)
		chosen, r, err := NegotiateOffer(sd)
		if err != nil {
			return
		}
		ans := Answer(Origin{Sess: 1, Version: 1}, "u", "127.0.0.1", 4000, sd, chosen, r)
		if _, err := Parse(ans); err != nil {
			t.Fatalf("our answer does not parse: %v\n%s", err, ans)
		}
	})
}

// Held is the far end's view (it does not take our media as sendrecv), Sends the media
// gateway's: our own hold (sendonly seen from us) still sends.
func TestRemoteHeldAndSends(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		r           Remote
		held, sends bool
	}{
		"sendrecv":             {r: Remote{Port: 4000, Direction: SendRecv}, held: false, sends: true},
		"our hold":             {r: Remote{Port: 4000, Direction: SendOnly}, held: true, sends: true},
		"far end holds":        {r: Remote{Port: 4000, Direction: RecvOnly}, held: true, sends: false},
		"inactive":             {r: Remote{Port: 4000, Direction: Inactive}, held: true, sends: false},
		"no address (0.0.0.0)": {r: Remote{Port: 0, Direction: RecvOnly}, held: true, sends: false},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.r.Held() != tc.held || tc.r.Sends() != tc.sends {
				t.Fatalf("%+v: held %v sends %v, want %v %v", tc.r, tc.r.Held(), tc.r.Sends(), tc.held, tc.sends)
			}
		})
	}
}
