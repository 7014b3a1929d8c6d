package sipport

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (the package starts none).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestParseAOR(t *testing.T) {
	for name, tc := range map[string]struct {
		in, want string
		bad      bool
	}{
		"plain":            {in: "sip:alice@ims.test", want: "sip:alice@ims.test"},
		"sips with port":   {in: "sips:alice@ims.test:5061", want: "sips:alice@ims.test:5061"},
		"params dropped":   {in: "sip:alice@ims.test;transport=tcp?subject=x", want: "sip:alice@ims.test"},
		"no user":          {in: "sip:ims.test", want: "sip:ims.test"},
		"tel":              {in: "tel:+15551234", bad: true},
		"mailto":           {in: "mailto:a@b", bad: true},
		"empty":            {in: "", bad: true},
		"no host":          {in: "sip:alice@", bad: true},
		"not a uri at all": {in: "alice", bad: true},
		"line break host":  {in: "sip:\n", bad: true},
		"space":            {in: "sip:alice@ims.test x", bad: true},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := ParseAOR(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadAOR) {
					t.Fatalf("%q: err %v, want ErrBadAOR", tc.in, err)
				}
				return
			}
			if err != nil || u.String() != tc.want {
				t.Fatalf("%q: %q, %v; want %q", tc.in, u.String(), err, tc.want)
			}
		})
	}
}

// FuzzParseAOR checks that no input panics the parser, that every refusal wraps
// ErrBadAOR, and that what it accepts is a sip/sips URI with a host that parses again to
// itself.
func FuzzParseAOR(f *testing.F) {
	for _, s := range []string{"sip:alice@ims.test", "sips:a@b:5061;transport=tls", "tel:+1", "sip:", "sip:a@[::1]:5060", "sip:%41@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseAOR(s)
		if err != nil {
			if !errors.Is(err, ErrBadAOR) {
				t.Fatalf("%q: error does not wrap ErrBadAOR: %v", s, err)
			}
			return
		}
		if u.Host == "" || (u.Scheme != "sip" && u.Scheme != "sips") || u.UriParams != nil || u.Headers != nil {
			t.Fatalf("%q: accepted as %#v", s, u)
		}
		if strings.ContainsAny(u.Host, "\r\n") {
			t.Fatalf("%q: line break in host %q", s, u.Host)
		}
	})
}
