package gateway

import (
	"context"
	"fmt"
	"time"
)

// readyPoll is how often RunReady asks Ready while the gateway starts.
const readyPoll = 10 * time.Millisecond

// RunReady runs the gateway as Run does and calls ready once it is ready (Ready answers
// nil), then returns what Run returns. A load tool's child gateway prints its address
// from ready, so the tool connects only once every later commit reaches its pages. It
// returns an error if Run ends before the gateway was ready, and Run's result if soft
// ends first.
func (a *App) RunReady(soft, hard context.Context, ready func()) error {
	errc := make(chan error, 1)
	go func() { errc <- a.Run(soft, hard) }()
	for {
		rctx, cancel := context.WithTimeout(soft, time.Second)
		err := a.Ready(rctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-soft.Done():
			return <-errc
		case err := <-errc:
			return fmt.Errorf("gateway ended before it was ready: %w", err)
		case <-time.After(readyPoll):
		}
	}
	ready()
	return <-errc
}
