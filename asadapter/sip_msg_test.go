package asadapter

import (
	"strings"
	"testing"
)

// FuzzHeaderHelpers covers the small parsers of header values the adapter relies on.
func FuzzHeaderHelpers(f *testing.F) {
	f.Add("1800;refresher=uac")
	f.Add(`"A, B" <sip:a@b;lr>, <sip:c@d>`)
	f.Add("tel:+15551234")
	f.Add("bob")
	f.Fuzz(func(t *testing.T, s string) {
		if n, _ := parseSessionExpires(s, 90); n != 0 && n < 90 {
			t.Fatalf("session expires %d below the minimum", n)
		}
		if parts := splitHeaderList(s); strings.Join(parts, ",") != s {
			t.Fatalf("split lost bytes: %q", parts)
		}
		_ = dtmfDigits(s)
	})
}
