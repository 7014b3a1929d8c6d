package asadapter

import (
	"errors"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		in   string
		want time.Duration
		bad  bool
	}{
		"seconds":          {in: "5", want: 5 * time.Second},
		"spaces":           {in: "  3 ", want: 3 * time.Second},
		"zero":             {in: "0", want: 0},
		"duration param":   {in: "18000;duration=3600", want: 18000 * time.Second},
		"comment":          {in: "120 (I'm in a meeting)", want: 120 * time.Second},
		"empty":            {in: "", bad: true},
		"negative":         {in: "-1", bad: true},
		"date (RFC 2616)":  {in: "Fri, 31 Dec 1999 23:59:59 GMT", bad: true},
		"beyond 32 bits":   {in: "99999999999", bad: true},
		"letters after it": {in: "5s", bad: true},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := parseRetryAfter(tc.in)
			if tc.bad {
				if !errors.Is(err, ErrBadRetryAfter) {
					t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v", tc.in, got, err, ErrBadRetryAfter)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestRetryWait(t *testing.T) {
	t.Parallel()
	res := func(code int, retryAfter string) *sip.Response {
		r := sip.NewResponse(code, "x")
		if retryAfter != "" {
			r.AppendHeader(sip.NewHeader("Retry-After", retryAfter))
		}
		return r
	}
	for name, tc := range map[string]struct {
		res   *sip.Response
		retry bool
		wait  time.Duration // checked when retry and not 491 (a random wait)
	}{
		"491":                          {res: res(491, ""), retry: true},
		"500 with Retry-After":         {res: res(500, "2"), retry: true, wait: 2 * time.Second},
		"500 without Retry-After":      {res: res(500, ""), retry: false},
		"500 with a longer wait":       {res: res(500, "11"), retry: false},
		"500 with a bad Retry-After":   {res: res(500, "soon"), retry: false},
		"503 with Retry-After":         {res: res(503, "1"), retry: false},
		"488":                          {res: res(488, ""), retry: false},
		"500 with Retry-After 0 (now)": {res: res(500, "0"), retry: true, wait: 0},
	} {
		t.Run(name, func(t *testing.T) {
			wait, retry := retryWait(tc.res, true)
			if retry != tc.retry {
				t.Fatalf("retry %v, want %v", retry, tc.retry)
			}
			if retry && tc.res.StatusCode != 491 && wait != tc.wait {
				t.Fatalf("wait %v, want %v", wait, tc.wait)
			}
		})
	}
}

// FuzzParseRetryAfter: any value gives a wait or ErrBadRetryAfter, never a panic, and a
// wait is whole seconds.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"5", "18000;duration=3600", "120 (comment)", "", "-1", "4294967296"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseRetryAfter(s)
		if err != nil {
			if !errors.Is(err, ErrBadRetryAfter) {
				t.Fatalf("error %v is not ErrBadRetryAfter", err)
			}
			return
		}
		if d < 0 || d%time.Second != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v", s, d)
		}
	})
}
