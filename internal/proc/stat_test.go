package proc

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"
)

// A real line (from a process named "a) b", which is why fields count from the last ')').
const statLine = "4242 (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 1 0 100 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"

// parseCase is one input of a parser test: the value wanted, or bad for a refusal.
type parseCase[T comparable] struct {
	in   string
	want T
	bad  bool
}

// testParse runs a parser over its cases; a refusal must wrap ErrMalformed.
func testParse[T comparable](t *testing.T, parse func([]byte) (T, error), cases map[string]parseCase[T]) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := parse([]byte(tc.in))
			if tc.bad {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("parse(%q) = %v, %v; want ErrMalformed", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	testParse(t, ParseStat, map[string]parseCase[time.Duration]{
		"name with space and paren": {in: statLine, want: 1750 * time.Millisecond},
		"zero times":                {in: "1 (x) S 0 0 0 0 0 0 0 0 0 0 0 0", want: 0},
		"no command name":           {in: "4242 a S 1 2 3 4 5 6 7 8 9 10 11 12 13", bad: true},
		"short":                     {in: "4242 (a) S 1 2 3", bad: true},
		"empty":                     {in: "", bad: true},
		"utime not a number":        {in: "1 (x) S 0 0 0 0 0 0 0 0 0 0 x 0", bad: true},
		"stime negative":            {in: "1 (x) S 0 0 0 0 0 0 0 0 0 0 0 -5", bad: true},
		"times overflow":            {in: "1 (x) S 0 0 0 0 0 0 0 0 0 0 9223372036854775807 1", bad: true},
	})
}

func TestParseStatusRSS(t *testing.T) {
	t.Parallel()
	testParse(t, ParseStatusRSS, map[string]parseCase[int64]{
		"present":    {in: "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n", want: 1234 << 10},
		"missing":    {in: "Name:\tkthreadd\nThreads:\t1\n", bad: true},
		"empty":      {in: "VmRSS:\n", bad: true},
		"not number": {in: "VmRSS:\tlots kB\n", bad: true},
		"too large":  {in: "VmRSS:\t9223372036854775807 kB\n", bad: true},
	})
}

func TestParseLoadAvg(t *testing.T) {
	t.Parallel()
	got, err := ParseLoadAvg([]byte("0.52 1.10 2.00 3/812 12345\n"))
	if err != nil || got != [3]string{"0.52", "1.10", "2.00"} {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, in := range []string{"", "0.52 1.10", "0.52 x 2.00 1/2 3"} {
		if _, err := ParseLoadAvg([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseLoadAvg(%q) = %v; want ErrMalformed", in, err)
		}
	}
}

func TestParseMachineStat(t *testing.T) {
	t.Parallel()
	busy, total, err := ParseMachineStat([]byte("cpu  10 1 5 100 4 0 2 0 0 0\ncpu0 5 0 2 50 2 0 1 0 0 0\n"))
	if err != nil || busy != 18 || total != 122 {
		t.Fatalf("got busy %d total %d, %v; want 18, 122", busy, total, err)
	}
	for _, in := range []string{"", "intr 1 2 3 4 5", "cpu 1 2", "cpu 1 2 x 4 5", "cpu 18446744073709551615 1 0 0"} {
		if _, _, err := ParseMachineStat([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseMachineStat(%q) = %v; want ErrMalformed", in, err)
		}
	}
}

// TestOwnEntries reads this test process's own /proc entries and the machine's.
func TestOwnEntries(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	if _, err := CPU(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := SumCPU([]int{pid, pid}); err != nil {
		t.Fatal(err)
	}
	rss, err := RSS(pid)
	if err != nil || rss <= 0 {
		t.Fatalf("RSS = %d, %v", rss, err)
	}
	sum, err := SumRSS([]int{pid, pid})
	if err != nil || sum <= 0 {
		t.Fatalf("SumRSS = %d, %v", sum, err)
	}
	if _, err := LoadAvg(); err != nil {
		t.Fatal(err)
	}
	busy, total, err := MachineCPU()
	if err != nil || total == 0 || busy > total {
		t.Fatalf("MachineCPU = %d of %d, %v", busy, total, err)
	}
	if SelfCPU() < 0 {
		t.Fatal("negative own CPU time")
	}
	n, err := RaiseNoFile()
	if err != nil || n == 0 {
		t.Fatalf("RaiseNoFile = %d, %v", n, err)
	}
}

// TestCPUGrows burns CPU until /proc shows it: the reader reports this process's own
// time, not a constant. The deadline only bounds a failure.
func TestCPUGrows(t *testing.T) {
	t.Parallel()
	pid := os.Getpid()
	c0, err := CPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	x := 0
	for {
		for i := range 1_000_000 {
			x += i
		}
		c1, err := CPU(pid)
		if err != nil {
			t.Fatal(err)
		}
		if c1 > c0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %v (%d)", c1, x)
		}
	}
}

func TestMissingProcess(t *testing.T) {
	t.Parallel()
	// A process that has exited and been reaped has no /proc entry.
	c, err := Start("true", newCommand(t, "true"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	if _, err := CPU(c.PID()); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("CPU of reaped pid %d: %v", c.PID(), err)
	}
	if _, err := SumRSS([]int{os.Getpid(), c.PID()}); err == nil {
		t.Fatalf("SumRSS with reaped pid %d succeeded", c.PID())
	}
}

func TestParseStatGroup(t *testing.T) {
	g, cpu, err := ParseStatGroup([]byte(statLine))
	if err != nil || g != 4242 || cpu != 1750*time.Millisecond {
		t.Fatalf("got %d %v %v", g, cpu, err)
	}
}

// GroupCPU reads this test's own group (go test runs it as a group of its own or in
// the shell's: either way this process is in it).
func TestGroupCPU(t *testing.T) {
	pgid, err := syscall.Getpgid(0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := GroupCPU(pgid); err != nil || d < 0 {
		t.Fatalf("GroupCPU(%d) = %v, %v", pgid, d, err)
	}
}
