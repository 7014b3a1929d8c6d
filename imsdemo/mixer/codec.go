package mixer

import (
	"fmt"
	"strings"
	"time"

	"github.com/zaf/g711"
)

// Frame geometry: G.711 at 8 kHz, one byte per sample, 20 ms per RTP packet (the ptime
// every answer of the conference server asks for).
const (
	SampleRate    = 8000
	FrameSamples  = 160
	FrameBytes    = FrameSamples
	FrameDuration = 20 * time.Millisecond
)

// Codec is a G.711 variant.
type Codec uint8

// The codecs a participant may use; each participant keeps its own.
const (
	PCMU Codec = iota // G.711 µ-law, static RTP payload type 0
	PCMA              // G.711 A-law, static RTP payload type 8
)

// Static RTP payload types of RFC 3551 that the mixer knows.
const (
	ptPCMU = 0
	ptPCMA = 8
	ptCN   = 13 // comfort noise (RFC 3389): ignored, a silent participant adds nothing
)

// CodecByName returns the codec of an SDP encoding name ("PCMU", "PCMA", any case).
func CodecByName(name string) (Codec, bool) {
	switch {
	case strings.EqualFold(name, "PCMU"):
		return PCMU, true
	case strings.EqualFold(name, "PCMA"):
		return PCMA, true
	}
	return 0, false
}

// codecOfPT returns the codec of a static payload type.
func codecOfPT(pt uint8) (Codec, bool) {
	switch pt {
	case ptPCMU:
		return PCMU, true
	case ptPCMA:
		return PCMA, true
	}
	return 0, false
}

// PayloadType is the codec's static RTP payload type.
func (c Codec) PayloadType() uint8 {
	if c == PCMA {
		return ptPCMA
	}
	return ptPCMU
}

// String is the codec's SDP encoding name.
func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// silence is the code of a zero sample.
func (c Codec) silence() byte {
	if c == PCMA {
		return 0xD5
	}
	return 0xFF
}

// decode turns src (at most FrameBytes) into dst; samples past src are silence.
func (c Codec) decode(dst *[FrameSamples]int16, src []byte) {
	n := min(len(src), FrameSamples)
	if c == PCMA {
		for i, b := range src[:n] {
			dst[i] = g711.DecodeAlawFrame(b)
		}
	} else {
		for i, b := range src[:n] {
			dst[i] = g711.DecodeUlawFrame(b)
		}
	}
	clear(dst[n:])
}

// encode writes the frame src, clipped to 16 bits, into dst (FrameBytes long).
func (c Codec) encode(dst []byte, src *[FrameSamples]int32) {
	dst = dst[:FrameBytes]
	if c == PCMA {
		for i, s := range src {
			dst[i] = alawEnc[uint16(clip16(s))>>4]
		}
	} else {
		for i, s := range src {
			dst[i] = ulawEnc[uint16(clip16(s))>>2]
		}
	}
}

// Encoding tables, read-only once built. G.711 µ-law looks at the top 14 bits of a
// sample and A-law at the top 12 (the encoders shift the rest away first, and an
// arithmetic shift commutes with the one's complement they take of negative samples), so
// a table indexed by those bits gives exactly g711's code in one load instead of a
// dozen operations: encoding is most of a mixer's work. 16 KiB and 4 KiB stay in cache.
var (
	ulawEnc = encTable(2, g711.EncodeUlawFrame)
	alawEnc = encTable(4, g711.EncodeAlawFrame)
)

func encTable(shift uint, enc func(int16) uint8) []uint8 {
	t := make([]uint8, 1<<(16-shift))
	for i := range t {
		t[i] = enc(int16(uint16(i) << shift))
	}
	return t
}

// clip16 saturates a sum of samples to the 16-bit range: louder than full scale is
// full scale, never a wrap-around to the opposite sign.
func clip16(s int32) int16 {
	if s > 32767 {
		return 32767
	}
	if s < -32768 {
		return -32768
	}
	return int16(s)
}
