package proc

import (
	"errors"
	"testing"
)

// The parsers read what the kernel writes, but they must never panic nor return a
// negative figure whatever the bytes; a refusal wraps ErrMalformed.

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statLine))
	f.Add([]byte("1 (x) S 0 0 0 0 0 0 0 0 0 0 0 0"))
	f.Add([]byte("1 (x) S 0 0 0 0 0 0 0 0 0 0 9223372036854775807 1"))
	f.Add([]byte("1 x)"))
	f.Add([]byte(")"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseStat(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("negative CPU time %v from %q", d, b)
		}
	})
}

func FuzzParseStatusRSS(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmRSS:\t    1234 kB\n"))
	f.Add([]byte("VmRSS:\n"))
	f.Add([]byte("VmRSS: -1 kB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseStatusRSS(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("negative RSS %d from %q", n, b)
		}
	})
}

func FuzzParseLoadAvg(f *testing.F) {
	f.Add([]byte("0.52 1.10 2.00 3/812 12345\n"))
	f.Add([]byte("0.52"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseLoadAvg(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
	})
}

func FuzzParseMachineStat(f *testing.F) {
	f.Add([]byte("cpu  10 1 5 100 4 0 2 0 0 0\ncpu0 5 0 2 50 2 0 1 0 0 0\n"))
	f.Add([]byte("cpu 18446744073709551615 1 0 0"))
	f.Add([]byte("cpu"))
	f.Fuzz(func(t *testing.T, b []byte) {
		busy, total, err := ParseMachineStat(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if busy > total {
			t.Fatalf("busy %d above total %d from %q", busy, total, b)
		}
	})
}
