package testpeer

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// wav builds a 16-bit PCM WAV of samples (dataSize 0 as a recording still being written).
func wav(rate, channels int, samples []int16, dataSize int) []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00")
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*2*channels))
	b = binary.LittleEndian.AppendUint16(b, uint16(2*channels))
	b = binary.LittleEndian.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(dataSize))
	for _, s := range samples {
		for range channels {
			b = binary.LittleEndian.AppendUint16(b, uint16(s))
		}
	}
	return b
}

func TestToneLevelAndWAV(t *testing.T) {
	s := make([]int16, 8000)
	Sine(s, 8000, 440, 5000, 0)
	if l := ToneLevel(s, 8000, 440); math.Abs(l-5000) > 50 {
		t.Fatalf("440 Hz level %.0f, want 5000", l)
	}
	if l := ToneLevel(s, 8000, 1000); l > 50 {
		t.Fatalf("1000 Hz level %.0f in a 440 Hz tone", l)
	}
	for _, size := range []int{2 * 2 * len(s), 0} {
		got, rate, err := ParseWAV(wav(8000, 2, s, size))
		if err != nil || rate != 8000 || len(got) != len(s) || got[100] != s[100] {
			t.Fatalf("data size %d: %d samples at %d Hz, %v", size, len(got), rate, err)
		}
	}
	got, rate, err := ParseWAV(WAV(s, 8000))
	if err != nil || rate != 8000 || !slices.Equal(got, s) {
		t.Fatalf("WAV round trip: %d samples at %d Hz, %v", len(got), rate, err)
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add(wav(8000, 1, []int16{1, 2, 3}, 6))
	f.Add(wav(48000, 2, []int16{1, -2}, 0))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, rate, err := ParseWAV(b)
		if err == nil && (rate < 0 || len(s) > len(b)) {
			t.Fatalf("%d samples at %d Hz from %d bytes", len(s), rate, len(b))
		}
	})
}
