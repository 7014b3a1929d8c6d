package testpeer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// Audio helpers for tests that check what a peer hears: a tone generator, a Goertzel
// filter to measure one frequency, and a WAV reader for baresip's recordings.

// Sine fills dst with a tone: amp × sin(2π·freq·(start+i)/rate). Passing the running
// sample count as start keeps the phase continuous from frame to frame.
func Sine(dst []int16, rate, freq, amp float64, start int) {
	for i := range dst {
		dst[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(start+i)/rate))
	}
}

// ToneLevel measures the amplitude of freq in samples with the Goertzel algorithm: a
// sine of amplitude A at freq gives about A, other frequencies (more than rate/len Hz
// away) give little. It answers "does this recording carry that tone, and how loud"
// without a full FFT.
func ToneLevel(samples []int16, rate, freq float64) float64 {
	n := len(samples)
	if n == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / rate
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	re := s1 - s2*math.Cos(w)
	im := s2 * math.Sin(w)
	return 2 * math.Hypot(re, im) / float64(n)
}

// RMS is the root mean square of samples: the overall level, tone or noise.
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, x := range samples {
		sum += float64(x) * float64(x)
	}
	return math.Sqrt(sum / float64(len(samples)))
}

// ReadWAV reads a 16-bit PCM WAV file and returns the samples of its first channel and
// its sample rate.
func ReadWAV(path string) ([]int16, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	s, rate, err := ParseWAV(b)
	if err != nil {
		return nil, 0, fmt.Errorf("testpeer: %s: %w", path, err)
	}
	return s, rate, nil
}

// ParseWAV parses a 16-bit PCM WAV file's bytes (see ReadWAV).
func ParseWAV(b []byte) ([]int16, int, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a WAV file")
	}
	var channels, bits, rate int
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		if size > len(body) || (id == "data" && size == 0) {
			// A recording still being written (baresip's sndfile fills in the sizes
			// when it closes the file): take what is there.
			size = len(body)
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, 0, errors.New("short fmt chunk")
			}
			if f := binary.LittleEndian.Uint16(body); f != 1 && f != 0xFFFE {
				return nil, 0, fmt.Errorf("WAV format %d is not PCM", f)
			}
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits = int(binary.LittleEndian.Uint16(body[14:]))
		case "data":
			if bits != 16 || channels < 1 {
				return nil, 0, fmt.Errorf("%d-bit %d-channel audio, want 16-bit", bits, channels)
			}
			frame := 2 * channels
			out := make([]int16, size/frame)
			for i := range out {
				out[i] = int16(binary.LittleEndian.Uint16(body[i*frame:]))
			}
			return out, rate, nil
		}
		off += 8 + size + size&1 // chunks are padded to even sizes
	}
	return nil, 0, errors.New("no data chunk")
}

// WAV returns a mono 16-bit PCM WAV file of samples at rate.
func WAV(samples []int16, rate int) []byte {
	b := make([]byte, 44+2*len(samples))
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*len(samples)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*len(samples)))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}
