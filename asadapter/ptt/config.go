package ptt

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"

	"dsmgw/floorctl"
)

// Config configures the floor channels of one adapter instance. Zero fields take the
// values of DefaultConfig.
type Config struct {
	// BindAddr is the address floor sockets bind (default 0.0.0.0).
	BindAddr string
	// PublicAddr is the address written in the c= line of the floor control media: where
	// the floor control server sends. Required (the adapter passes its advertised host).
	PublicAddr string
	// PortMin and PortMax bound the floor ports (default 30000-30999: beside the media
	// gateway's 20000-29999 and the demo conference server's 31000-31999, so one host
	// may run all three; one port per push-to-talk call).
	PortMin, PortMax int
	// Priority is the mc_priority the offer asks for (TS 24.380 section 14) and the
	// Floor Priority of every request (default 1: the lowest that still takes part in
	// priority ordering; a talk group of pages has no priorities of its own).
	Priority uint8
	// Floor holds the participant's timers (T101/C101, T100/C100); zero fields take
	// floorctl's defaults.
	Floor floorctl.Config
}

// DefaultConfig returns every knob at its default (PublicAddr has none).
func DefaultConfig() Config {
	return Config{BindAddr: "0.0.0.0", PortMin: 30000, PortMax: 30999, Priority: 1}
}

// withDefaults fills zero fields from DefaultConfig and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.PortMin == 0 {
		c.PortMin = d.PortMin
	}
	if c.PortMax == 0 {
		c.PortMax = d.PortMax
	}
	if c.Priority == 0 {
		c.Priority = d.Priority
	}
	if _, err := netip.ParseAddr(c.BindAddr); err != nil {
		return c, fmt.Errorf("%w: BindAddr %q is not an IP address", ErrConfig, c.BindAddr)
	}
	if _, err := netip.ParseAddr(c.PublicAddr); err != nil {
		return c, fmt.Errorf("%w: PublicAddr %q is not an IP address", ErrConfig, c.PublicAddr)
	}
	if c.PortMin < 1024 || c.PortMax > 65535 || c.PortMax < c.PortMin {
		return c, fmt.Errorf("%w: floor ports %d-%d", ErrConfig, c.PortMin, c.PortMax)
	}
	if _, err := floorctl.NewParticipant(c.Floor, 0, 0, nil); err != nil {
		return c, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return c, nil
}

// Ports hands out floor ports of the configured range to the calls of one adapter.
type Ports struct {
	cfg  Config
	bind netip.Addr // cfg.BindAddr
	pub  netip.Addr // cfg.PublicAddr

	mu   sync.Mutex // guards used
	used map[int]bool
}

// NewPorts checks cfg and returns the floor ports of an adapter instance.
func NewPorts(cfg Config) (*Ports, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	bind, _ := netip.ParseAddr(cfg.BindAddr) // both checked by withDefaults
	pub, _ := netip.ParseAddr(cfg.PublicAddr)
	return &Ports{cfg: cfg, bind: bind, pub: pub, used: map[int]bool{}}, nil
}

// bind opens a free port of the range, starting at a random one so that a restarted
// adapter does not reuse the ports of the calls it just ended (late floor messages would
// reach a new call). A port bound by another process is skipped.
func (p *Ports) open() (*net.UDPConn, int, error) {
	n := p.cfg.PortMax - p.cfg.PortMin + 1
	start := rand.IntN(n)
	for i := range n {
		port := p.cfg.PortMin + (start+i)%n
		p.mu.Lock()
		taken := p.used[port]
		p.used[port] = true
		p.mu.Unlock()
		if taken {
			continue
		}
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.bind, uint16(port))))
		if err == nil {
			return c, port, nil
		}
		p.release(port)
	}
	return nil, 0, fmt.Errorf("ptt: ports %d-%d: %w", p.cfg.PortMin, p.cfg.PortMax, ErrNoPort)
}

func (p *Ports) release(port int) {
	p.mu.Lock()
	delete(p.used, port)
	p.mu.Unlock()
}
