package mediagw

import (
	"fmt"
	"net"
	"sync"
)

// portPool hands out RTP/RTCP port pairs (even RTP port, RTCP = RTP+1) from a range.
// It walks the range round-robin instead of reusing the lowest free pair, so a pair just
// released is not handed out again at once: late packets of the old call would otherwise
// hit the new one.
type portPool struct {
	ip       net.IP
	min, max int

	mu   sync.Mutex // guards next and used
	next int
	used map[int]bool
}

func newPortPool(ip net.IP, min, max int) *portPool {
	return &portPool{ip: ip, min: min, max: max, next: min, used: map[int]bool{}}
}

// allocate binds a free pair. Ports another process holds are skipped.
func (p *portPool) allocate() (rtpConn, rtcpConn *net.UDPConn, port int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pairs := (p.max - p.min + 1) / 2
	var lastErr error
	for i := 0; i < pairs; i++ {
		port = p.next
		p.next += 2
		if p.next+1 > p.max {
			p.next = p.min
		}
		if p.used[port] {
			continue
		}
		rtpConn, err = net.ListenUDP("udp", &net.UDPAddr{IP: p.ip, Port: port})
		if err != nil {
			lastErr = err
			continue
		}
		rtcpConn, err = net.ListenUDP("udp", &net.UDPAddr{IP: p.ip, Port: port + 1})
		if err != nil {
			rtpConn.Close()
			lastErr = err
			continue
		}
		p.used[port] = true
		return rtpConn, rtcpConn, port, nil
	}
	if lastErr != nil {
		return nil, nil, 0, fmt.Errorf("%w: no free port pair in %d-%d (last: %v)", ErrUnavailable, p.min, p.max, lastErr)
	}
	return nil, nil, 0, fmt.Errorf("%w: all port pairs in %d-%d in use", ErrUnavailable, p.min, p.max)
}

func (p *portPool) release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}

func (p *portPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.used)
}
