package proc

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ClockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat and /proc/stat.
// The kernel exports it as 100 on every Linux architecture Go supports (whatever the
// kernel's internal HZ), so one tick is 10 ms and that is the resolution of CPU.
const ClockTicks = 100

// tick is the length of one clock tick.
const tick = time.Second / ClockTicks

// maxTicks is the largest tick count that fits a time.Duration (about 292 years of
// CPU): a larger value cannot come from a real process and is refused, not wrapped.
const maxTicks = math.MaxInt64 / int64(tick)

// CPU returns the user plus system CPU time pid has used, from /proc/<pid>/stat.
func CPU(pid int) (time.Duration, error) {
	return readPID(pid, "stat", "cpu", ParseStat)
}

// ParseStat returns utime+stime from the contents of a /proc/<pid>/stat file. The
// command name (field 2) is in parentheses and may itself hold spaces and ')', so the
// numeric fields are counted from the last ')'.
func ParseStat(b []byte) (time.Duration, error) {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("%w: stat without a command name", ErrMalformed)
	}
	// After the name: state (field 3) ... utime (14), stime (15).
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%w: stat has %d fields after the command name, want at least 13", ErrMalformed, len(f))
	}
	ut, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil || ut < 0 {
		return 0, fmt.Errorf("%w: stat utime %q", ErrMalformed, f[11])
	}
	st, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil || st < 0 {
		return 0, fmt.Errorf("%w: stat stime %q", ErrMalformed, f[12])
	}
	if ut > maxTicks-st {
		return 0, fmt.Errorf("%w: stat times %d+%d ticks out of range", ErrMalformed, ut, st)
	}
	return time.Duration(ut+st) * tick, nil
}

// RSS returns the resident set size of pid in bytes (VmRSS in /proc/<pid>/status).
func RSS(pid int) (int64, error) {
	return readPID(pid, "status", "rss", ParseStatusRSS)
}

// readPID reads /proc/<pid>/<entry> and parses it; errors name what was read and pid.
func readPID[T any](pid int, entry, what string, parse func([]byte) (T, error)) (T, error) {
	var v T
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + entry)
	if err == nil {
		v, err = parse(b)
	}
	if err != nil {
		return v, fmt.Errorf("%s of pid %d: %w", what, pid, err)
	}
	return v, nil
}

// ParseStatusRSS returns VmRSS in bytes from the contents of a /proc/<pid>/status file
// (the kernel writes it in kB, meaning KiB).
func ParseStatusRSS(b []byte) (int64, error) {
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 1 {
			return 0, fmt.Errorf("%w: empty VmRSS", ErrMalformed)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > math.MaxInt64>>10 {
			return 0, fmt.Errorf("%w: VmRSS %q", ErrMalformed, f[0])
		}
		return kb << 10, nil
	}
	// Kernel threads and zombies have no VmRSS line.
	return 0, fmt.Errorf("%w: no VmRSS", ErrMalformed)
}

// SumCPU adds the CPU times of several processes (say, the gateway instances of a run).
// A process that cannot be read is an error, never a zero that would flatter a figure.
func SumCPU(pids []int) (time.Duration, error) { return sum(pids, CPU) }

// SumRSS adds the resident set sizes of several processes; as SumCPU, a process that
// cannot be read is an error.
func SumRSS(pids []int) (int64, error) { return sum(pids, RSS) }

func sum[T time.Duration | int64](pids []int, read func(int) (T, error)) (T, error) {
	var t T
	for _, p := range pids {
		v, err := read(p)
		if err != nil {
			return 0, err
		}
		t += v
	}
	return t, nil
}

// LoadAvg returns the 1, 5 and 15 minute load averages as /proc/loadavg writes them. The
// tools print them beside their figures because the machine is shared.
func LoadAvg() ([3]string, error) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return [3]string{}, fmt.Errorf("load average: %w", err)
	}
	return ParseLoadAvg(b)
}

// ParseLoadAvg returns the first three fields of the contents of /proc/loadavg, each
// checked to be a number.
func ParseLoadAvg(b []byte) ([3]string, error) {
	var la [3]string
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return la, fmt.Errorf("%w: loadavg has %d fields, want at least 3", ErrMalformed, len(f))
	}
	for i := range la {
		if _, err := strconv.ParseFloat(f[i], 64); err != nil {
			return [3]string{}, fmt.Errorf("%w: loadavg field %q", ErrMalformed, f[i])
		}
		la[i] = f[i]
	}
	return la, nil
}

// MachineCPU returns the busy and total clock ticks of all CPUs since boot, from the
// "cpu" line of /proc/stat. The difference of two readings shows how much of the machine
// every process together took in a window, so a tool can tell its own share from that of
// others on a shared machine.
func MachineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("machine cpu: %w", err)
	}
	return ParseMachineStat(b)
}

// ParseMachineStat reads the first line of the contents of /proc/stat ("cpu" followed by
// user, nice, system, idle, iowait, ... ticks). Busy is every field but idle and iowait.
func ParseMachineStat(b []byte) (busy, total uint64, err error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("%w: /proc/stat does not start with a cpu line of at least 4 times", ErrMalformed)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n > math.MaxUint64-total {
			return 0, 0, fmt.Errorf("%w: /proc/stat cpu field %q", ErrMalformed, v)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// ParseStatGroup returns the process group (field 5) and utime+stime of a
// /proc/<pid>/stat file's contents.
func ParseStatGroup(b []byte) (pgrp int, cpu time.Duration, err error) {
	cpu, err = ParseStat(b)
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]) // state ppid pgrp ...
	pgrp, err = strconv.Atoi(f[2])
	if err != nil || pgrp < 0 {
		return 0, 0, fmt.Errorf("%w: stat pgrp %q", ErrMalformed, f[2])
	}
	return pgrp, cpu, nil
}

// GroupCPU returns the user plus system CPU time used so far by the live processes of
// process group pgid (a server and the workers it forked, such as nginx's): a tool that
// watches a server started by someone else reads its whole group. Processes that ended
// in between are not counted, so a reading spans live processes only.
func GroupCPU(pgid int) (time.Duration, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	found := false
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		g, cpu, err := ParseStatGroup(b)
		if err != nil || g != pgid {
			continue
		}
		sum += cpu
		found = true
	}
	if !found {
		return 0, fmt.Errorf("cpu of process group %d: no live process in it", pgid)
	}
	return sum, nil
}
