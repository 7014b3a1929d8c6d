package testpeer

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// journalLines is how many of the last browser events a failed test prints.
const journalLines = 80

// chromiumJournal keeps the last events of a page that explain a page that never became
// ready: console messages, uncaught exceptions, browser log entries, failed loads and
// HTTP errors. Without it a failed browser test shows only what the page's DOM says.
type chromiumJournal struct {
	mu    sync.Mutex
	start time.Time
	lines []string
	urls  map[network.RequestID]string
}

// watch records ctx's target's events until the browser ends.
func (j *chromiumJournal) watch(ctx context.Context) error {
	j.start = time.Now()
	j.urls = make(map[network.RequestID]string)
	return chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			args := make([]string, 0, len(e.Args))
			for _, a := range e.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			j.add("console.%s %s", e.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg += " " + d.Exception.Description
			}
			j.add("exception %s:%d %s", d.URL, d.LineNumber, msg)
		case *log.EventEntryAdded:
			j.add("log.%s %s %s", e.Entry.Level, e.Entry.URL, e.Entry.Text)
		case *network.EventRequestWillBeSent:
			j.mu.Lock()
			j.urls[e.RequestID] = e.Request.URL
			j.mu.Unlock()
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				j.add("http %d %s", e.Response.Status, e.Response.URL)
			}
		case *network.EventLoadingFailed:
			j.mu.Lock()
			u := j.urls[e.RequestID]
			delete(j.urls, e.RequestID)
			j.mu.Unlock()
			j.add("load failed %s: %s (canceled %v)", u, e.ErrorText, e.Canceled)
		case *network.EventLoadingFinished:
			j.mu.Lock()
			delete(j.urls, e.RequestID)
			j.mu.Unlock()
		}
	})
}

func (j *chromiumJournal) add(format string, args ...any) {
	line := fmt.Sprintf("%7.3fs ", time.Since(j.start).Seconds()) + fmt.Sprintf(format, args...)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.lines = append(j.lines, line)
	if len(j.lines) > journalLines {
		j.lines = j.lines[len(j.lines)-journalLines:]
	}
}

// report prints the journal, and the requests still open, when the test failed.
func (j *chromiumJournal) report(t testing.TB) {
	if !t.Failed() {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var b strings.Builder
	for _, l := range j.lines {
		b.WriteString("\n\t" + l)
	}
	for _, u := range j.urls {
		b.WriteString("\n\tstill loading " + u)
	}
	t.Logf("--- chromium journal (console, exceptions, failed loads) ---%s", b.String())
}
