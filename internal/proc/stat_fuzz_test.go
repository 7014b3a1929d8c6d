package proc

import (
	"errors"
	"testing"
)

// The parsers read what the kernel writes, but they must never panic nor return a
// negative figure whatever the bytes; a refusal wraps ErrMalformed.

// refused reports whether the parser refused its input, failing the test if the
// refusal does not wrap ErrMalformed.
func refused(t *testing.T, err error) bool {
	t.Helper()
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
	return err != nil
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (x) S 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Add([]byte("1 (x) S 0 0 0 0 0 0 0 0 0 0 9223372036854775807 1"))
	f.Add([]byte("1 x)"))
	f.Add([]byte(")"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseStat(b); !refused(t, err) && d < 0 {
			t.Fatalf("negative CPU time %v from %q", d, b)
		}
	})
}

func FuzzParseStatusRSS(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmRSS:\t    1234 kB\n"))
	f.Add([]byte("VmRSS:\n"))
	f.Add([]byte("VmRSS: -1 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseStatusRSS(b); !refused(t, err) && n < 0 {
			t.Fatalf("negative RSS %d from %q", n, b)
		}
	})
}

func FuzzParseLoadAvg(f *testing.F) {
	f.Add([]byte("0.52 1.10 2.00 3/812 12345\n"))
	f.Add([]byte("0.52"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := ParseLoadAvg(b)
		refused(t, err)
	})
}

func FuzzParseMachineStat(f *testing.F) {
	f.Add([]byte("cpu  10 1 5 100 4 0 2 0 0 0\ncpu0 5 0 2 50 2 0 1 0 0 0\n"))
	f.Add([]byte("cpu 18446744073709551615 1 0 0"))
	f.Add([]byte("cpu"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if busy, total, err := ParseMachineStat(b); !refused(t, err) && busy > total {
			t.Fatalf("busy %d above total %d from %q", busy, total, b)
		}
	})
}

func FuzzParseStatGroup(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (x) S 0 -1 0 0 0 0 0 0 0 0 0 0"))
	f.Add([]byte("1 (x) S 0 x 0 0 0 0 0 0 0 0 5 1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, d, err := ParseStatGroup(b); !refused(t, err) && (g < 0 || d < 0) {
			t.Fatalf("negative group %d or CPU %v from %q", g, d, b)
		}
	})
}
