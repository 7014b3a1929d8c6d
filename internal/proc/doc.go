// Package proc holds what the command-line tools (load generators and the development
// stack) need to run and measure other processes on this machine: readers of /proc for
// CPU time, resident memory and machine load; a starter for child processes that are
// always stopped by their PID; and loopback port helpers.
//
// It is Linux-only, as the tools are: the figures come from /proc and the children are
// signalled through their process groups. Test helpers that take a testing.TB stay in
// internal/testpeer.
package proc
