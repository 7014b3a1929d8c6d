package topology

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// forwarder publishes one TCP port: it accepts on a loopback address of the run and
// copies each connection both ways to the service's address, as Docker's userland proxy
// does for a published port. The service sees the bridge's address as the client's.
type forwarder struct {
	ln net.Listener
	to string

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and every copy
}

// dialTimeout bounds the connection to the service: on the bridge it answers at once or
// refuses; a stopped (SIGSTOP) service still completes the handshake in its kernel.
const dialTimeout = 3 * time.Second

func publishTCP(listen, to string) (*forwarder, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, to: to, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		f.wg.Add(1)
		go f.serve(c)
	}
}

func (f *forwarder) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	up, err := net.DialTimeout("tcp", f.to, dialTimeout)
	if err != nil {
		return // the client sees the connection close, as with a container that is down
	}
	defer up.Close()
	if !f.track(c, up) {
		return
	}
	defer f.untrack(c, up)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close: the other direction may still carry a response.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(up, c)
	go pipe(c, up)
	<-done
	<-done
}

// track registers a connection pair so that close can cut it; false once closed.
func (f *forwarder) track(cs ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	for _, c := range cs {
		f.conns[c] = struct{}{}
	}
	return true
}

func (f *forwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
	}
}

// close stops accepting, cuts every connection and waits for the copies to end.
func (f *forwarder) close() error {
	err := f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
