package topology

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// bobHearsFile is the call tests' override of docker-compose.yml: bob records what he
// receives (its comment says how).
const bobHearsFile = "testdata/bob-hears.yml"

// bobHears returns the override and the variables that make bob record what he receives:
// a copy of deploy/baresip with baresip's sndfile module added, in a folder of the test's.
func bobHears(t testing.TB) (override string, env map[string]string) {
	t.Helper()
	file, err := findComposeFile()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(filepath.Dir(file), "deploy", "baresip")
	dir := filepath.Join(t.TempDir(), "bob")
	if err := copyTree(src, dir); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// After the codecs: a filter on the audio bob decodes, written as it arrives.
	b = append(b, "\n# The call tests: what bob receives, to WAV files in the working folder.\nmodule\t\t\tsndfile.so\n"...)
	if err := os.WriteFile(cfg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if override, err = filepath.Abs(bobHearsFile); err != nil {
		t.Fatal(err)
	}
	return override, map[string]string{"DSMGW_BOB_CONFIG": dir}
}

// pcm is mono 16-bit audio.
type pcm struct {
	Rate    int
	Samples []int16
}

// errWAV is a WAV file this test cannot read.
var errWAV = errors.New("not a 16-bit PCM WAV file")

// parseWAV reads a 16-bit PCM WAV file (its first channel). A file still being written
// has a data chunk whose length is not filled in yet: closed reports whether it is.
func parseWAV(b []byte) (p pcm, closed bool, err error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return pcm{}, false, fmt.Errorf("%w: no RIFF/WAVE header", errWAV)
	}
	var channels int
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		body := b[off+8:]
		switch id {
		case "fmt ":
			if size < 16 || len(body) < 16 {
				return pcm{}, false, fmt.Errorf("%w: short fmt chunk", errWAV)
			}
			format, bits := binary.LittleEndian.Uint16(body), binary.LittleEndian.Uint16(body[14:])
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			p.Rate = int(binary.LittleEndian.Uint32(body[4:]))
			if format != 1 || bits != 16 || channels < 1 || p.Rate <= 0 {
				return pcm{}, false, fmt.Errorf("%w: format %d, %d bits, %d channels, %d Hz", errWAV, format, bits, channels, p.Rate)
			}
		case "data":
			if channels == 0 {
				return pcm{}, false, fmt.Errorf("%w: data before fmt", errWAV)
			}
			closed = size > 0 && size <= len(body)
			if closed {
				body = body[:size]
			}
			frame := 2 * channels
			for i := 0; i+frame <= len(body); i += frame {
				p.Samples = append(p.Samples, int16(binary.LittleEndian.Uint16(body[i:])))
			}
			return p, closed, nil
		}
		if size < 0 || size > len(body) {
			break
		}
		off += 8 + size + size%2 // chunks are padded to an even length
	}
	return pcm{}, false, fmt.Errorf("%w: no data chunk", errWAV)
}

// trimSilence drops the silent 20 ms frames at the end (below -50 dBFS): whatever bob's
// audio path wrote after the last packet it received.
func (p pcm) trimSilence() pcm {
	frame := p.Rate / 50
	end := len(p.Samples)
	for end >= frame && dBFS(p.Samples[end-frame:end]) < -50 {
		end -= frame
	}
	p.Samples = p.Samples[:end]
	return p
}

// dBFS is the RMS level of samples relative to full scale.
func dBFS(s []int16) float64 {
	if len(s) == 0 {
		return math.Inf(-1)
	}
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return 10 * math.Log10(sum/float64(len(s))/(32768*32768))
}

// pitch returns the loudest frequency of samples between 100 and 3,900 Hz in 5 Hz steps
// (Goertzel's algorithm at each) and the level of the whole.
func pitch(s []int16, rate int) (hz, db float64) {
	best := -1.0
	for f := 100.0; f <= 3900; f += 5 {
		w := 2 * math.Cos(2*math.Pi*f/float64(rate))
		var s1, s2 float64
		for _, v := range s {
			s1, s2 = float64(v)+w*s1-s2, s1
		}
		if pow := s1*s1 + s2*s2 - w*s1*s2; pow > best {
			best, hz = pow, f
		}
	}
	return hz, dBFS(s)
}

// bobHeardLast waits until bob's recording of the call that started at or after since is
// closed (the call ended) and returns its last frames (20 ms each, silence at the end
// trimmed): what bob received last.
func bobHeardLast(t *testing.T, s *Stack, since time.Time, frames int) pcm {
	t.Helper()
	dir := s.Service(t, "sip").root.resolve("/etc/dsmgw/baresip")
	var p pcm
	var file string
	waitFor(t, "bob's recording of the call closed", 15*time.Second, func() bool {
		// dump-<YYYY-MM-DD-hh-mm-ss>-dec.wav: names sort by time.
		names, _ := filepath.Glob(filepath.Join(dir, "dump-*-dec.wav"))
		slices.Sort(names)
		if len(names) == 0 {
			return false
		}
		file = names[len(names)-1]
		fi, err := os.Stat(file)
		if err != nil || fi.ModTime().Before(since) {
			return false
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return false
		}
		var closed bool
		p, closed, err = parseWAV(b)
		if err != nil {
			t.Fatalf("bob's recording %s: %v", filepath.Base(file), err)
		}
		return closed
	})
	p = p.trimSilence()
	n := min(len(p.Samples), frames*p.Rate/50)
	t.Logf("bob's recording %s: %.2f s of sound, the last %d ms looked at",
		strings.TrimSuffix(filepath.Base(file), ".wav"), float64(len(p.Samples))/float64(p.Rate), n*1000/p.Rate)
	p.Samples = p.Samples[len(p.Samples)-n:]
	return p
}

// checkBobHears fails unless p holds the page's tone (micHz, within a 10 Hz step of the
// search) at a level far above silence.
func checkBobHears(t *testing.T, p pcm, what string) {
	t.Helper()
	if len(p.Samples) < p.Rate/5 {
		t.Fatalf("%s: bob received %d samples, want at least 200 ms", what, len(p.Samples))
	}
	hz, db := pitch(p.Samples, p.Rate)
	if math.Abs(hz-micHz) > 10 || db < -40 {
		t.Fatalf("%s: bob heard %.0f Hz at %.1f dBFS, want the page's %d Hz", what, hz, db, micHz)
	}
	t.Logf("%s: bob heard %.0f Hz at %.1f dBFS", what, hz, db)
}

func TestPitch(t *testing.T) {
	s := make([]int16, 8000)
	for i := range s {
		s[i] = int16(8000*math.Sin(2*math.Pi*600*float64(i)/8000) + 500*math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	if hz, db := pitch(s, 8000); hz != 600 || db > -14 || db < -16.5 {
		t.Fatalf("pitch: %.0f Hz at %.1f dBFS, want 600 Hz at about -15", hz, db)
	}
	p := pcm{Rate: 8000, Samples: append(slices.Clone(s), make([]int16, 4000)...)}
	if got := len(p.trimSilence().Samples); got != 8000 {
		t.Fatalf("trimSilence kept %d samples, want 8000", got)
	}
}

func TestParseWAV(t *testing.T) {
	dir := t.TempDir()
	writeToneWAV(t, filepath.Join(dir, "t.wav"), 600)
	b, err := os.ReadFile(filepath.Join(dir, "t.wav"))
	if err != nil {
		t.Fatal(err)
	}
	p, closed, err := parseWAV(b)
	if err != nil || !closed || p.Rate != 48000 || len(p.Samples) != 96000 {
		t.Fatalf("parseWAV: %d Hz, %d samples, closed %v, %v", p.Rate, len(p.Samples), closed, err)
	}
	// Being written: the data length is not filled in yet.
	open := slices.Clone(b)
	binary.LittleEndian.PutUint32(open[40:], 0)
	if p, closed, err = parseWAV(open); err != nil || closed || len(p.Samples) != 96000 {
		t.Fatalf("parseWAV of an open file: %d samples, closed %v, %v", len(p.Samples), closed, err)
	}
	if _, _, err := parseWAV(b[:30]); !errors.Is(err, errWAV) {
		t.Fatalf("a cut header: %v, want errWAV", err)
	}
}

func FuzzParseWAV(f *testing.F) {
	hdr := make([]byte, 44)
	copy(hdr, "RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x04\x00\x00\x00")
	f.Add(append(hdr, 1, 2, 3, 4))
	f.Add([]byte("RIFF0000WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, _, err := parseWAV(b)
		if err == nil && p.Rate <= 0 {
			t.Fatalf("accepted a rate of %d", p.Rate)
		}
	})
}
