package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"dsmgw/internal/testpeer"
)

// TestMain lets the test binary serve as the gateway child: dsmsoak re-executes its own
// executable with the serve flag, which in a test is this binary.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == serveFlag {
		runServe()
	}
	os.Exit(m.Run())
}

// feedStream matches the key of a shard's feed stream.
var feedStream = regexp.MustCompile(`^dsm:\{[0-9]+\}:feed$`)

// TestSoakReturnsToBaseline runs the whole tool briefly (its own redis-server, sipp UAS
// and gateway child; 300 page sessions, half of them with a call, beside 10 live pages)
// and checks that Redis holds the same keys after the janitor as before the sessions (but
// for feed streams made for the first time), and that the live pages kept theirs. It
// asserts nothing about speed or bytes (allocator noise); the report has those.
func TestSoakReturnsToBaseline(t *testing.T) {
	t.Parallel()
	testpeer.Need(t, "redis-server")
	testpeer.Need(t, "sipp")
	var out bytes.Buffer
	o := options{sessions: 300, warmup: 50, calls: 0.5, conc: 20, live: 10, wave: 150,
		grace: time.Second, feedAge: 2 * time.Second, settle: 60 * time.Second, verbose: true}
	// A failure deadline, not a timing assertion.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := run(ctx, o, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.sessions != 300 || res.calls != 150 || res.failed != 0 {
		t.Fatalf("%d sessions, %d calls, %d failed", res.sessions, res.calls, res.failed)
	}
	// Every key of the baseline is there after, and the only new ones are feed streams
	// that no object of the warm-up hashed to: a stream, once made, stays (one per shard).
	gone, added := keyDiff(res.base.names, res.final.names)
	for _, k := range added {
		if !feedStream.MatchString(k) {
			gone = append(gone, "+"+k)
		}
	}
	if len(gone) > 0 || res.final.writers != 20 || res.final.players != 10 || res.final.presence != 10 {
		t.Fatalf("keys only in the baseline, or new and not feed streams: %v; baseline %v, after %v", gone, res.base, res.final)
	}
}

func TestOptionsRefuseOutOfBounds(t *testing.T) {
	for name, args := range map[string][]string{
		"no sessions":     {"-sessions", "0"},
		"too many pages":  {"-c", "5000"},
		"calls above all": {"-calls", "1.5"},
		"no grace":        {"-grace", "0s"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o, err := parseFlags([]string{"-keep"})
	if err != nil || o.grace < 24*time.Hour {
		t.Fatalf("-keep: %+v %v", o, err)
	}
}
