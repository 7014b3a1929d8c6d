package floorctl

import (
	"errors"
	"io"
	"testing"
)

func TestScannerCompound(t *testing.T) {
	datagram := h(t,
		// RR with no report block (RFC 3550 §6.4.2): V=2 RC=0, PT=201, length 1.
		"80c90001", "11223344",
		// SDES with one CNAME chunk "ab": PT=202, length 2.
		"81ca0002", "11223344", "01026162",
		// Floor Request, priority 5.
		"80cc0003", "11223344", mcpt, "00020500",
		// An APP packet of another application.
		"80cc0002", "11223344", "506f4331",
		// A broken floor control message: a Floor Deny without Reject Cause.
		"83cc0002", "aabbccdd", mcpt,
		// Floor Release.
		"84cc0002", "11223344", mcpt,
	)
	sc := NewScanner(datagram)
	var m Message
	var got []Subtype
	var errs []error
	for {
		err := sc.Next(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		got = append(got, m.Subtype)
	}
	if len(got) != 2 || got[0] != FloorRequest || got[1] != FloorRelease {
		t.Fatalf("messages %v", got)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrMissingField) {
		t.Fatalf("errors %v", errs)
	}
	if !IsFloorControl(datagram[20:]) || IsFloorControl(datagram) {
		t.Fatal("IsFloorControl")
	}
}

func TestScannerFraming(t *testing.T) {
	tests := []struct {
		name string
		wire []string
		want error
		msgs int
	}{
		{"two messages, no compound", []string{"80cc0002", "11223344", mcpt, "84cc0002", "11223344", mcpt}, nil, 2},
		{"three stray bytes after a message", []string{"80cc0002", "11223344", mcpt, "80cc00"}, ErrTruncated, 1},
		{"version 1 after a message", []string{"80cc0002", "11223344", mcpt, "40cc0002", "11223344", mcpt}, ErrBadVersion, 1},
		{"length past the datagram", []string{"80c90009", "11223344", "80cc0002", "11223344", mcpt}, ErrTruncated, 0},
		{"APP of 8 bytes", []string{"80cc0001", "11223344", "84cc0002", "11223344", mcpt}, ErrLength, 1},
		{"empty", nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := NewScanner(h(t, tt.wire...))
			var m Message
			msgs := 0
			var firstErr error
			for i := 0; i < 10; i++ {
				err := sc.Next(&m)
				if err == io.EOF {
					break
				}
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				msgs++
			}
			if msgs != tt.msgs || !errors.Is(firstErr, tt.want) || (tt.want == nil && firstErr != nil) {
				t.Fatalf("%d messages, error %v; want %d, %v", msgs, firstErr, tt.msgs, tt.want)
			}
			if err := sc.Next(&m); err != io.EOF {
				t.Fatalf("after the end: %v", err)
			}
		})
	}
}
