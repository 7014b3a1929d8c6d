package imsdemo

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"dsmgw/floorctl"
)

// floorPort is a talk group member's floor control socket: the port of the
// "m=application <port> udp MCPTT" line of our answer (TS 24.380 section 14), on which
// floor messages travel as RTCP APP packets named MCPT. Its reader hands every datagram
// to the room's floor control server; the server's answers go out through send.
type floorPort struct {
	pool *portPool
	conn *net.UDPConn
	port int
	log  *slog.Logger
	// remote is where floor messages go: the offer's address and port, then the source
	// of the member's floor messages (symmetric, as for RTP), so a NAT that rewrites the
	// port still gets the answers. Only a datagram the server accepted moves it.
	remote atomic.Pointer[netip.AddrPort]
	// from is the only address floor messages are taken from: the offer's, so that
	// nobody else who learns the port can ask for the floor in the member's name (any
	// port of it, for NATs). Invalid when the offer gave none: then any source.
	from atomic.Pointer[netip.Addr]

	sendErrs atomic.Uint64
	wg       sync.WaitGroup // the reader
	once     sync.Once
}

// maxFloorDatagram is the largest floor datagram read: the longest message (Floor Taken
// with two identities of 255 bytes) is under 600 bytes; several in one datagram still fit.
const maxFloorDatagram = 1500

func openFloorPort(pool *portPool, remote netip.AddrPort, log *slog.Logger) (*floorPort, error) {
	c, err := pool.openOne()
	if err != nil {
		return nil, err
	}
	f := &floorPort{pool: pool, conn: c, port: c.LocalAddr().(*net.UDPAddr).Port, log: log}
	f.setRemote(remote)
	return f, nil
}

// setRemote changes where floor messages go and where they are taken from; an invalid
// address stops sending.
func (f *floorPort) setRemote(a netip.AddrPort) {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	from := a.Addr()
	f.remote.Store(&a)
	f.from.Store(&from)
}

// start runs the reader until close: each datagram goes to recv, which returns whether
// the floor control server took at least one message of it.
func (f *floorPort) start(recv func(datagram []byte) bool) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		buf := make([]byte, maxFloorDatagram)
		for {
			n, from, err := f.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					f.log.Warn("floor read failed", "err", err)
				}
				return
			}
			from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
			if allowed := f.from.Load(); allowed != nil && allowed.IsValid() && *allowed != from.Addr() {
				f.log.Debug("floor datagram from a foreign address", "from", from.String())
				continue
			}
			if !floorctl.IsFloorControl(buf[:n]) {
				f.log.Debug("not a floor message", "from", from.String(), "bytes", n)
				continue
			}
			if !recv(buf[:n]) {
				continue
			}
			if cur := f.remote.Load(); cur == nil || *cur != from {
				f.remote.Store(&from)
			}
		}
	}()
}

// send sends one marshalled message to the member.
func (f *floorPort) send(b []byte) {
	a := f.remote.Load()
	if a == nil || !a.IsValid() || a.Port() == 0 {
		return
	}
	if _, err := f.conn.WriteToUDPAddrPort(b, *a); err != nil {
		f.sendErrs.Add(1)
	}
}

// close stops the reader, waits for it and gives the port back. Safe twice.
func (f *floorPort) close() {
	f.once.Do(func() {
		f.conn.Close()
		f.wg.Wait()
		f.pool.release(f.port)
	})
}
