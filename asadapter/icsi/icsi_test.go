package icsi

import (
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Service{"": MMTel, "mmtel": MMTel, " poc ": PoC, "poc": PoC} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"video", "MMTEL", "poc2", "urn:urn-7:3gpp-service.ims.icsi.mmtel"} {
		if _, err := Parse(in); !errors.Is(err, ErrUnknownService) {
			t.Errorf("Parse(%q): %v, want ErrUnknownService", in, err)
		}
	}
}

// The headers and Contact parameters of each service, written as TS 24.173 and TS
// 24.379 show them.
func TestRequestIdentification(t *testing.T) {
	cases := []struct {
		s               Service
		pps, ac, params string
	}{
		{MMTel, "urn:urn-7:3gpp-service.ims.icsi.mmtel",
			`*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`,
			`+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`},
		{PoC, "urn:urn-7:3gpp-service.ims.icsi.mcptt",
			`*;+g.3gpp.mcptt;require;explicit`,
			`+g.3gpp.mcptt;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt"`},
	}
	for _, c := range cases {
		h := c.s.RequestHeaders()
		if h[0].Name() != "P-Preferred-Service" || h[0].Value() != c.pps {
			t.Errorf("%s: %s: %s", c.s, h[0].Name(), h[0].Value())
		}
		if h[1].Name() != "Accept-Contact" || h[1].Value() != c.ac {
			t.Errorf("%s: %s: %s", c.s, h[1].Name(), h[1].Value())
		}
		p := sip.NewParams()
		c.s.AddContactTags(&p)
		ch := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "u", Host: "h"}, Params: p}
		if got := ch.Value(); got != "<sip:u@h>;"+c.params {
			t.Errorf("%s: Contact %s", c.s, got)
		}
	}
	p := sip.NewParams()
	AddRegisterTags(&p, []Service{MMTel, PoC, MMTel})
	want := `+g.3gpp.mcptt;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel,urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt"`
	if got := p.ToString(';'); got != want {
		t.Errorf("REGISTER tags %s\nwant %s", got, want)
	}
	p = sip.NewParams()
	AddRegisterTags(&p, nil)
	if got := p.ToString(';'); got != `+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"` {
		t.Errorf("REGISTER tags without services %s", got)
	}
}

func request(t *testing.T, hdrs ...string) *sip.Request {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "example.net"})
	for _, h := range hdrs {
		name, value, _ := strings.Cut(h, ": ")
		req.AppendHeader(sip.NewHeader(name, value))
	}
	return req
}

func TestIdentify(t *testing.T) {
	cases := []struct {
		name string
		hdrs []string
		want Service
		err  bool
	}{
		{"nothing: a plain voice call", nil, MMTel, false},
		{"P-Asserted-Service MMTel", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.mmtel"}, MMTel, false},
		{"P-Asserted-Service MCPTT", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt"}, PoC, false},
		{"P-Asserted-Service in capitals", []string{"P-Asserted-Service: URN:URN-7:3GPP-SERVICE.IMS.ICSI.MCPTT"}, PoC, false},
		{"an MMTel sub-service", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.mmtel.hd-voice"}, MMTel, false},
		{"not a sub-service", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.mmtelx"}, "", true},
		{"P-Asserted-Service unknown", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.session"}, "", true},
		{"P-Asserted-Service a list, one known", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.oma.cpm.msg, urn:urn-7:3gpp-service.ims.icsi.mmtel"}, MMTel, false},
		{"the asserted service beats the tags", []string{"P-Asserted-Service: urn:urn-7:3gpp-service.ims.icsi.mmtel", "Accept-Contact: *;+g.3gpp.mcptt;require;explicit"}, MMTel, false},
		{"P-Preferred-Service", []string{"P-Preferred-Service: urn:urn-7:3gpp-service.ims.icsi.mcptt"}, PoC, false},
		{"Accept-Contact MCPTT", []string{"Accept-Contact: *;+g.3gpp.mcptt;require;explicit"}, PoC, false},
		{"Accept-Contact ICSI", []string{`Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`}, MMTel, false},
		{"Accept-Contact an unknown ICSI", []string{`Accept-Contact: *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.session";require`}, "", true},
		{"Accept-Contact two values", []string{`Accept-Contact: *;audio, *;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mcptt,urn%3Aurn-7%3Ax"`}, PoC, false},
		{"Accept-Contact without service tags", []string{"Accept-Contact: *;audio;require"}, MMTel, false},
		{"Contact MCPTT", []string{"Contact: <sip:alice@192.0.2.1:5060;transport=udp>;+g.3gpp.mcptt;expires=60"}, PoC, false},
		{"Contact with a display name and semicolons in the URI", []string{`Contact: "A; B" <sip:a@192.0.2.1;ob>;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`}, MMTel, false},
		{"Contact an unknown ICSI", []string{`Contact: <sip:a@192.0.2.1>;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.oma.cpm.msg"`}, "", true},
		{"Contact without tags", []string{"Contact: <sip:a@192.0.2.1>"}, MMTel, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Identify(request(t, c.hdrs...))
			if c.err {
				if !errors.Is(err, ErrUnsupportedService) {
					t.Fatalf("got %q, %v; want ErrUnsupportedService", got, err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

func FuzzFeatureTags(f *testing.F) {
	f.Add(`;+g.3gpp.mcptt;require;explicit`)
	f.Add(`;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel,urn%3Aurn-7%3Ax";q=0.5`)
	f.Add(`;+g.3gpp.icsi-ref="a\"b;c";+g.3gpp.mcptt`)
	f.Add(`;+G.3GPP.ICSI-REF=%zz`)
	f.Fuzz(func(t *testing.T, s string) {
		_, urns := FeatureTags(s)
		for _, u := range urns {
			if u == "" {
				t.Fatalf("empty URN from %q", s)
			}
		}
		for _, part := range splitOutside(s, ';') {
			if len(part) > len(s) {
				t.Fatalf("a part longer than its input")
			}
		}
	})
}

func FuzzIdentify(f *testing.F) {
	f.Add("urn:urn-7:3gpp-service.ims.icsi.mcptt", `*;+g.3gpp.mcptt;require`, `<sip:a@b>;+g.3gpp.mcptt`)
	f.Add("", `*;+g.3gpp.icsi-ref="urn%3Aurn-7%3A3gpp-service.ims.icsi.mmtel"`, `sip:a@b;x`)
	f.Add("urn:urn-7:x,urn:urn-7:3gpp-service.ims.icsi.mmtel", "", `"<>" <sip:a@b>;"`)
	f.Fuzz(func(t *testing.T, pas, ac, contact string) {
		req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "example.net"})
		if pas != "" {
			req.AppendHeader(sip.NewHeader("P-Asserted-Service", pas))
		}
		if ac != "" {
			req.AppendHeader(sip.NewHeader("Accept-Contact", ac))
		}
		if contact != "" {
			req.AppendHeader(sip.NewHeader("Contact", contact))
		}
		s, err := Identify(req)
		switch {
		case err != nil && !errors.Is(err, ErrUnsupportedService):
			t.Fatalf("error %v is not ErrUnsupportedService", err)
		case err == nil && s != MMTel && s != PoC:
			t.Fatalf("service %q", s)
		}
	})
}
