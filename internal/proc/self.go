package proc

import (
	"fmt"
	"syscall"
	"time"
)

// SelfCPU returns the user plus system CPU time of the calling process. The tools print
// it so a reader sees how much of the shared machine the load generator itself took.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	// Getrusage(RUSAGE_SELF) cannot fail with a valid pointer.
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RaiseNoFile lifts the soft RLIMIT_NOFILE of the calling process to its hard limit and
// returns the new soft limit: a load generator with 10,000 connections needs 10,000
// descriptors, and so does a gateway serving them, while the usual soft limit is 1,024.
func RaiseNoFile() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, fmt.Errorf("setrlimit nofile %d: %w", r.Max, err)
		}
	}
	return r.Cur, nil
}
