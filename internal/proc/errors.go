package proc

import "errors"

// ErrMalformed is wrapped by every parser here when a /proc entry does not have the
// layout the kernel documents (proc(5)); the wrapping error says which entry and why.
var ErrMalformed = errors.New("malformed /proc entry")

// ErrNoFreePort is returned by FreePort when no loopback port was free for both TCP and
// UDP after all its attempts.
var ErrNoFreePort = errors.New("no free port")

// ErrExited is wrapped by StartListening when every child it started exited before it
// was ready (each time, most likely, because another process took its port first).
var ErrExited = errors.New("exited before it was ready")
