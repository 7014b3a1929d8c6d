package asadapter

import "sync"

// owner counts goroutines so that whoever started them can wait for them: the Adapter owns
// its calls' goroutines, its background rescans and BYEs, and every SIP handler while it
// runs (Run waits for all of them); each call owns its helpers (progress writes, re-ACKs,
// CANCEL), which it waits for before it reports itself done. Once stopped, an owner starts
// nothing more, so its wait cannot miss a late start.
type owner struct {
	mu      sync.Mutex // guards stopped, and orders wg.Add before stopAndWait's wg.Wait
	stopped bool
	wg      sync.WaitGroup
}

// enter counts the caller as running under the owner; false once the owner stopped. A true
// enter must be matched by leave.
func (o *owner) enter() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stopped {
		return false
	}
	o.wg.Add(1)
	return true
}

// leave ends what enter counted.
func (o *owner) leave() { o.wg.Done() }

// spawn runs f on a goroutine the owner waits for; false (and f not run) once the owner
// stopped.
func (o *owner) spawn(f func()) bool {
	if !o.enter() {
		return false
	}
	go func() {
		defer o.leave()
		f()
	}()
	return true
}

// stopAndWait refuses new goroutines and waits for those running. It is safe to call twice.
func (o *owner) stopAndWait() {
	o.mu.Lock()
	o.stopped = true
	o.mu.Unlock()
	o.wg.Wait()
}
