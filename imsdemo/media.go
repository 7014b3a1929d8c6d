package imsdemo

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"dsmgw/imsdemo/mixer"
)

// portPool hands out RTP/RTCP port pairs (even, odd) of the configured range.
type portPool struct {
	bind     string
	min, max int // even bounds of RTP ports

	mu   sync.Mutex // guards used
	used map[int]bool
}

func newPortPool(bind string, lo, hi int) *portPool {
	lo += lo & 1
	hi -= 1 - hi&1 // the last even port whose odd partner is in range
	return &portPool{bind: bind, min: lo, max: hi - 1, used: map[int]bool{}}
}

// open binds a free pair, starting at a random place so that a restarted server does not
// reuse the ports of the calls it just ended (late packets would reach a new session).
func (p *portPool) open() (rtpConn, rtcpConn *net.UDPConn, err error) {
	err = p.take(func(port int) bool {
		rc, err1 := net.ListenUDP("udp", udpAddr(p.bind, port))
		if err1 != nil {
			return false
		}
		cc, err2 := net.ListenUDP("udp", udpAddr(p.bind, port+1))
		if err2 != nil {
			rc.Close()
			return false
		}
		rtpConn, rtcpConn = rc, cc
		return true
	})
	return rtpConn, rtcpConn, err
}

// openOne binds the even port of a free pair and leaves its odd partner unbound: the
// floor control port of a talk group member (TS 24.380 floor control needs one port,
// not an RTP/RTCP pair). Taking a whole pair keeps the pool's bookkeeping to pairs.
func (p *portPool) openOne() (conn *net.UDPConn, err error) {
	err = p.take(func(port int) bool {
		c, err := net.ListenUDP("udp", udpAddr(p.bind, port))
		conn = c
		return err == nil
	})
	return conn, err
}

// take marks a free pair used and calls bind with its even port until bind succeeds
// (a port taken by another process is skipped), starting at a random pair.
func (p *portPool) take(bind func(port int) bool) error {
	n := (p.max-p.min)/2 + 1
	start := rand.IntN(n)
	for i := range n {
		port := p.min + 2*((start+i)%n)
		p.mu.Lock()
		taken := p.used[port]
		if !taken {
			p.used[port] = true
		}
		p.mu.Unlock()
		if taken {
			continue
		}
		if bind(port) {
			return nil
		}
		p.release(port) // taken by another process: try the next pair
	}
	return fmt.Errorf("imsdemo: RTP ports %d-%d: %w", p.min, p.max+1, ErrNoPorts)
}

func (p *portPool) release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

func udpAddr(host string, port int) *net.UDPAddr {
	a, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return &net.UDPAddr{Port: port}
	}
	return a
}

// mediaPort is one participant's RTP and RTCP sockets. Its reader goroutine feeds the
// mixer participant; the mixer's tick sends through WriteRTP. RTCP is read and dropped:
// the port answers (a closed one draws ICMP errors, and some phones hang up on those)
// but the demo keeps no reception statistics.
type mediaPort struct {
	pool *portPool
	rtp  *net.UDPConn
	rtcp *net.UDPConn
	port int
	log  *slog.Logger
	// remote is where the mix goes: the SDP address, then the source of the peer's RTP
	// (symmetric RTP, RFC 4961), which gets through NATs that rewrite the port.
	remote atomic.Pointer[netip.AddrPort]
	// part is the mixer participant the reader feeds (replaced on a codec change).
	part atomic.Pointer[mixer.Participant]

	sendErrs atomic.Uint64
	wg       sync.WaitGroup // the reader goroutines
	once     sync.Once
}

func openMedia(pool *portPool, log *slog.Logger) (*mediaPort, error) {
	rc, cc, err := pool.open()
	if err != nil {
		return nil, err
	}
	return &mediaPort{pool: pool, rtp: rc, rtcp: cc, port: rc.LocalAddr().(*net.UDPAddr).Port, log: log}, nil
}

// setRemote changes where the mix goes; an invalid address stops sending.
func (m *mediaPort) setRemote(a netip.AddrPort) {
	m.remote.Store(&a)
}

// WriteRTP sends one mixed packet (mixer.Sink). It runs on the mixer's clock and does
// not allocate.
func (m *mediaPort) WriteRTP(pkt []byte) {
	a := m.remote.Load()
	if a == nil || !a.IsValid() || a.Port() == 0 {
		return
	}
	if _, err := m.rtp.WriteToUDPAddrPort(pkt, *a); err != nil {
		m.sendErrs.Add(1)
	}
}

// start runs the readers until close.
func (m *mediaPort) start() {
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.readRTP() }()
	go func() { defer m.wg.Done(); m.drainRTCP() }()
}

func (m *mediaPort) readRTP() {
	buf := make([]byte, 1500)
	for {
		n, from, err := m.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Warn("rtp read failed", "err", err)
			}
			return
		}
		p := m.part.Load()
		if p == nil || p.Push(buf[:n]) != nil {
			continue
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		if cur := m.remote.Load(); cur == nil || *cur != from {
			// Latch only on valid RTP, so a stray datagram cannot steal the stream.
			m.remote.Store(&from)
		}
	}
}

func (m *mediaPort) drainRTCP() {
	buf := make([]byte, 1500)
	for {
		if _, _, err := m.rtcp.ReadFromUDPAddrPort(buf); err != nil {
			return
		}
	}
}

// close stops the readers, waits for them and gives the ports back. Safe twice.
func (m *mediaPort) close() {
	m.once.Do(func() {
		m.rtp.Close()
		m.rtcp.Close()
		m.wg.Wait()
		m.pool.release(m.port)
	})
}
