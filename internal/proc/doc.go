// Package proc is the one place where dsmgw's tools and tests run other processes: a
// starter for child processes that runs each in its own process group and always stops it
// by its PID (Start, Group, and StartListening for a child on a port another process may
// take first); readers of /proc for CPU time, resident memory and machine load; and
// loopback port helpers.
//
// It is Linux-only, as the tools are: the figures come from /proc and the children are
// signalled through their process groups. It takes no testing.TB, so the command-line
// tools use it as the test helpers in internal/testpeer do.
package proc
