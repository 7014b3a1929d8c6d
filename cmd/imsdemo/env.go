package main

import (
	"fmt"
	"time"

	"github.com/kelseyhightower/envconfig"

	"dsmgw/floorctl"
	"dsmgw/imsdemo"
	"dsmgw/imsdemo/mixer"
)

// env is the process configuration, read from IMSDEMO_* variables. Knobs of the server
// have no default here: unset, they take imsdemo.DefaultConfig's (the one place of
// defaults); docs/imsdemo.md lists them, and a test checks the two agree.
type env struct {
	HTTPAddr string        `envconfig:"HTTP_ADDR" default:":8090"`
	LogLevel string        `envconfig:"LOG_LEVEL" default:"info"`
	Drain    time.Duration `envconfig:"DRAIN"`

	ListenUDP     string `envconfig:"LISTEN_UDP"`
	ListenTCP     string `envconfig:"LISTEN_TCP"`
	AdvertiseHost string `envconfig:"ADVERTISE_HOST"`
	Domain        string `envconfig:"DOMAIN"`
	EchoUser      string `envconfig:"ECHO_USER"`

	TalkGroupDomain  string        `envconfig:"TALKGROUP_DOMAIN"`
	FloorMaxTalk     time.Duration `envconfig:"FLOOR_MAX_TALK"`
	FloorRevokeGrace time.Duration `envconfig:"FLOOR_REVOKE_GRACE"`
	FloorQueueLimit  int           `envconfig:"FLOOR_QUEUE_LIMIT"`

	RTPBindAddr   string        `envconfig:"RTP_BIND_ADDR"`
	RTPPublicAddr string        `envconfig:"RTP_PUBLIC_ADDR"`
	RTPPortMin    int           `envconfig:"RTP_PORT_MIN"`
	RTPPortMax    int           `envconfig:"RTP_PORT_MAX"`
	MediaTimeout  time.Duration `envconfig:"MEDIA_TIMEOUT"`

	MaxRooms     int           `envconfig:"MAX_ROOMS"`
	RoomSize     int           `envconfig:"ROOM_SIZE"`
	MixWorkers   int           `envconfig:"MIX_WORKERS"`
	JitterTarget time.Duration `envconfig:"JITTER_TARGET"`
	JitterDepth  time.Duration `envconfig:"JITTER_DEPTH"`

	SubscribeMin     time.Duration `envconfig:"SUBSCRIBE_MIN_EXPIRES"`
	SubscribeMax     time.Duration `envconfig:"SUBSCRIBE_MAX_EXPIRES"`
	SubscribeDefault time.Duration `envconfig:"SUBSCRIBE_DEFAULT_EXPIRES"`
	MaxSubscriptions int           `envconfig:"MAX_SUBSCRIPTIONS"`
	DepartedLinger   time.Duration `envconfig:"DEPARTED_LINGER"`
}

// envPrefix is the prefix of every variable: the process may share an environment
// with a gateway (HTTP_ADDR, LOG_LEVEL) in a development stack.
const envPrefix = "IMSDEMO"

func loadEnv() (env, error) {
	var e env
	if err := envconfig.Process(envPrefix, &e); err != nil {
		return e, fmt.Errorf("config: %w", err)
	}
	return e, nil
}

// config is the server's configuration: zero fields are filled by imsdemo.New.
func (e env) config() imsdemo.Config {
	return imsdemo.Config{
		ListenUDP: e.ListenUDP, ListenTCP: e.ListenTCP, AdvertiseHost: e.AdvertiseHost, Domain: e.Domain,
		EchoUser: e.EchoUser, TalkGroupDomain: e.TalkGroupDomain,
		Floor:       floorctl.Config{MaxTalk: e.FloorMaxTalk, RevokeGrace: e.FloorRevokeGrace, QueueLimit: e.FloorQueueLimit},
		RTPBindAddr: e.RTPBindAddr, RTPPublicAddr: e.RTPPublicAddr,
		RTPPortMin: e.RTPPortMin, RTPPortMax: e.RTPPortMax, MediaTimeout: e.MediaTimeout,
		MaxRooms: e.MaxRooms, MixWorkers: e.MixWorkers,
		Mixer:               mixer.Config{JitterTarget: e.JitterTarget, JitterDepth: e.JitterDepth, MaxParticipants: e.RoomSize},
		SubscribeMinExpires: e.SubscribeMin, SubscribeMaxExpires: e.SubscribeMax,
		SubscribeDefaultExpires: e.SubscribeDefault, MaxSubscriptions: e.MaxSubscriptions,
		DepartedLinger: e.DepartedLinger, DrainTimeout: e.Drain,
	}
}
