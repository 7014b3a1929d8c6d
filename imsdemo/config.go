package imsdemo

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"time"

	"dsmgw/floorctl"
	"dsmgw/imsdemo/mixer"
)

// Config is the conference server's configuration. Zero fields take the values of
// DefaultConfig.
type Config struct {
	// ListenUDP and ListenTCP are the SIP listen addresses; "-" disables one (at least
	// one is needed).
	ListenUDP string
	ListenTCP string
	// AdvertiseHost is the host in our Via, Contact and SDP (default: the UDP listen
	// host, or 127.0.0.1 when that is unspecified).
	AdvertiseHost string
	// Domain is the domain of room URIs, sip:<room>@<Domain>, in conference-info
	// documents (default: AdvertiseHost). Requests reach rooms whatever host their
	// request URI names: routing them here is the CSCF's decision.
	Domain string
	// EchoUser is the user part of the echo service (sip:echo@<Domain>).
	EchoUser string
	// TalkGroupDomain is the domain of talk groups: a request whose request URI has this
	// host joins the push-to-talk group sip:<group>@<TalkGroupDomain> instead of a
	// conference room (docs/imsdemo.md, "Routing"). Empty: no talk groups, every room
	// is a conference. It has no default, since a domain of its own must be routed here
	// by the CSCF; the demo stacks set ptt.sip.dsmgw.test.
	TalkGroupDomain string

	// RTPBindAddr is the address RTP sockets bind; RTPPublicAddr the one put in SDP
	// (default: AdvertiseHost).
	RTPBindAddr   string
	RTPPublicAddr string
	// RTPPortMin and RTPPortMax bound the RTP ports (even for RTP, odd for RTCP).
	RTPPortMin, RTPPortMax int
	// MediaTimeout ends a session whose participant sent no packet for this long while
	// it was supposed to send.
	MediaTimeout time.Duration

	// MaxRooms caps the rooms hosted at once (echo sessions count as rooms).
	MaxRooms int
	// MixWorkers is the number of mixing clocks, each on its own goroutine; rooms are
	// spread over them (default: GOMAXPROCS).
	MixWorkers int
	// Mixer configures each room's mixer (jitter buffer, room size).
	Mixer mixer.Config
	// Floor configures each talk group's floor control server: MaxTalk (the talk time
	// before Floor Revoke), RevokeGrace and QueueLimit (floorctl.Config; its
	// participant timers are not used here). Zero fields take floorctl's defaults.
	Floor floorctl.Config

	// SubscribeMinExpires, SubscribeMaxExpires and SubscribeDefaultExpires bound the
	// lifetime of conference subscriptions (RFC 6665 section 4.2.1.1).
	SubscribeMinExpires     time.Duration
	SubscribeMaxExpires     time.Duration
	SubscribeDefaultExpires time.Duration
	// MaxSubscriptions caps the subscriptions of one room.
	MaxSubscriptions int
	// DepartedLinger is how long a participant who left stays in the conference state
	// as disconnected before it is deleted from it: long enough for a page to show who
	// left, short enough that the list does not fill with the departed.
	DepartedLinger time.Duration

	// DrainTimeout bounds the shutdown: BYE to every participant and the terminating
	// NOTIFY to every subscriber.
	DrainTimeout time.Duration
}

// DefaultConfig returns every knob at its default.
func DefaultConfig() Config {
	return Config{
		ListenUDP:               "0.0.0.0:5060",
		ListenTCP:               "0.0.0.0:5060",
		EchoUser:                "echo",
		RTPBindAddr:             "0.0.0.0",
		RTPPortMin:              31000,
		RTPPortMax:              31999,
		MediaTimeout:            30 * time.Second,
		MaxRooms:                1000,
		MixWorkers:              runtime.GOMAXPROCS(0),
		Mixer:                   mixer.DefaultConfig(),
		Floor:                   floorctl.DefaultConfig(),
		SubscribeMinExpires:     60 * time.Second,
		SubscribeMaxExpires:     3600 * time.Second,
		SubscribeDefaultExpires: 3600 * time.Second,
		MaxSubscriptions:        100,
		DepartedLinger:          30 * time.Second,
		DrainTimeout:            5 * time.Second,
	}
}

// withDefaults fills zero fields from DefaultConfig and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.ListenUDP == "" {
		c.ListenUDP = d.ListenUDP
	}
	if c.ListenTCP == "" {
		c.ListenTCP = d.ListenTCP
	}
	if c.ListenUDP == "-" && c.ListenTCP == "-" {
		return c, fmt.Errorf("%w: no SIP listener", ErrConfig)
	}
	if c.AdvertiseHost == "" {
		c.AdvertiseHost = "127.0.0.1"
		for _, l := range []string{c.ListenUDP, c.ListenTCP} {
			if h, _, err := net.SplitHostPort(l); err == nil && h != "" && !net.ParseIP(h).IsUnspecified() {
				c.AdvertiseHost = h
				break
			}
		}
	}
	if c.Domain == "" {
		c.Domain = c.AdvertiseHost
	}
	if c.EchoUser == "" {
		c.EchoUser = d.EchoUser
	}
	if c.RTPBindAddr == "" {
		c.RTPBindAddr = d.RTPBindAddr
	}
	if c.RTPPublicAddr == "" {
		c.RTPPublicAddr = c.AdvertiseHost
	}
	if c.RTPPortMin == 0 {
		c.RTPPortMin = d.RTPPortMin
	}
	if c.RTPPortMax == 0 {
		c.RTPPortMax = d.RTPPortMax
	}
	if c.RTPPortMin < 1024 || c.RTPPortMax > 65535 || c.RTPPortMax < c.RTPPortMin+1 {
		return c, fmt.Errorf("%w: RTP ports %d-%d", ErrConfig, c.RTPPortMin, c.RTPPortMax)
	}
	if c.MediaTimeout <= 0 {
		c.MediaTimeout = d.MediaTimeout
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = d.MaxRooms
	}
	if c.MixWorkers <= 0 {
		c.MixWorkers = d.MixWorkers
	}
	if c.Mixer.JitterTarget <= 0 {
		c.Mixer.JitterTarget = d.Mixer.JitterTarget
	}
	if c.Mixer.JitterDepth <= 0 {
		c.Mixer.JitterDepth = d.Mixer.JitterDepth
	}
	if c.Mixer.MaxParticipants <= 0 {
		c.Mixer.MaxParticipants = d.Mixer.MaxParticipants
	}
	if c.Floor.MaxTalk <= 0 {
		c.Floor.MaxTalk = d.Floor.MaxTalk
	}
	if c.Floor.RevokeGrace <= 0 {
		c.Floor.RevokeGrace = d.Floor.RevokeGrace
	}
	if c.Floor.QueueLimit <= 0 {
		c.Floor.QueueLimit = d.Floor.QueueLimit
	}
	if _, err := floorctl.NewServer(c.Floor, 0, nil); err != nil {
		return c, fmt.Errorf("%w: floor control: %v", ErrConfig, err)
	}
	if c.TalkGroupDomain != "" && strings.EqualFold(c.TalkGroupDomain, c.Domain) {
		// One domain for both would make every conference a talk group.
		return c, fmt.Errorf("%w: TalkGroupDomain %q is the conference domain", ErrConfig, c.TalkGroupDomain)
	}
	if c.SubscribeMinExpires <= 0 {
		c.SubscribeMinExpires = d.SubscribeMinExpires
	}
	if c.SubscribeMaxExpires <= 0 {
		c.SubscribeMaxExpires = d.SubscribeMaxExpires
	}
	if c.SubscribeDefaultExpires <= 0 {
		c.SubscribeDefaultExpires = d.SubscribeDefaultExpires
	}
	if c.SubscribeMaxExpires < c.SubscribeMinExpires {
		return c, fmt.Errorf("%w: subscription lifetime %s-%s", ErrConfig, c.SubscribeMinExpires, c.SubscribeMaxExpires)
	}
	c.SubscribeDefaultExpires = min(max(c.SubscribeDefaultExpires, c.SubscribeMinExpires), c.SubscribeMaxExpires)
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = d.MaxSubscriptions
	}
	if c.DepartedLinger <= 0 {
		c.DepartedLinger = d.DepartedLinger
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = d.DrainTimeout
	}
	return c, nil
}
