package floorctl

import (
	"fmt"
	"time"
)

// Config holds the timers and limits of both state machines. Zero fields take the
// values of DefaultConfig (filled in one place, withDefaults). TS 24.380 section 11 leaves
// every value to configuration (TS 24.483); each default says why it has its value.
type Config struct {
	// MaxTalk is how long a granted participant may talk before the server revokes the
	// floor: timer T2 "stop talking" of the floor control server (§11.1), sent to
	// the talker as the Duration field in whole seconds. Default 30 s, a common PTT talk
	// burst limit that stops a stuck button from holding a group.
	MaxTalk time.Duration
	// RevokeGrace is how long the server waits after a Floor Revoke for the talker's Floor
	// Release before it takes the floor back: timer T3 "stop talking grace" (§11.1). Default 1 s:
	// several round trips, short enough that the queue moves on quickly.
	RevokeGrace time.Duration
	// QueueLimit is the most floor requests the server queues; one more is denied with
	// cause #7 "queue full". Default 16, more than a talk group of pages ever queues.
	QueueLimit int
	// NoQueueing makes the server deny requests while the floor is taken (cause #1)
	// instead of queueing them, as for a participant that did not offer mc_queueing.
	NoQueueing bool

	// T101 is the participant's Floor Request retransmission timer (§11.1.1).
	// Default 500 ms: a lost request is noticed within about two hundred ms of round trip
	// on any usable path, and a user holding the button notices no more than that.
	T101 time.Duration
	// C101 is how many Floor Requests the participant sends before it reports a timeout.
	// Default 3 (1.5 s in all with the default T101).
	C101 int
	// T100 is the participant's Floor Release retransmission timer. Default 500 ms, as T101.
	T100 time.Duration
	// C100 is how many Floor Releases the participant sends before it gives up waiting for
	// Floor Idle or Floor Taken. Default 3.
	C100 int
}

// DefaultConfig returns every knob at its default.
func DefaultConfig() Config {
	return Config{
		MaxTalk:     30 * time.Second,
		RevokeGrace: time.Second,
		QueueLimit:  16,
		T101:        500 * time.Millisecond,
		C101:        3,
		T100:        500 * time.Millisecond,
		C100:        3,
	}
}

// withDefaults fills zero fields from DefaultConfig and checks the ranges.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.MaxTalk == 0 {
		c.MaxTalk = d.MaxTalk
	}
	if c.RevokeGrace == 0 {
		c.RevokeGrace = d.RevokeGrace
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = d.QueueLimit
	}
	if c.T101 == 0 {
		c.T101 = d.T101
	}
	if c.C101 == 0 {
		c.C101 = d.C101
	}
	if c.T100 == 0 {
		c.T100 = d.T100
	}
	if c.C100 == 0 {
		c.C100 = d.C100
	}
	switch {
	case c.MaxTalk < 0 || c.MaxTalk > 65535*time.Second:
		return c, fmt.Errorf("%w: MaxTalk %v outside 0..65535 s (a 16-bit Duration)", ErrBadConfig, c.MaxTalk)
	case c.RevokeGrace < 0 || c.T101 < 0 || c.T100 < 0:
		return c, fmt.Errorf("%w: negative timer", ErrBadConfig)
	case c.QueueLimit < 0 || c.QueueLimit > 253:
		// Queue Info positions are 8 bits and 254, 255 are reserved (§8.2.3.5).
		return c, fmt.Errorf("%w: QueueLimit %d outside 0..253", ErrBadConfig, c.QueueLimit)
	case c.C101 < 0 || c.C100 < 0:
		return c, fmt.Errorf("%w: negative counter", ErrBadConfig)
	}
	return c, nil
}

// durationSeconds is d in whole seconds, rounded up, as the 16-bit Duration field.
func durationSeconds(d time.Duration) uint16 {
	s := (d + time.Second - 1) / time.Second
	switch {
	case s < 0:
		return 0
	case s > 65535:
		return 65535
	}
	return uint16(s)
}

// clockOrNow returns now, or time.Now when now is nil.
func clockOrNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
