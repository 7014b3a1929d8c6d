// Package gateway wires the components of one dsmgw process from its configuration; the
// binaries in cmd/ only call it.
package gateway

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Config is the whole gateway's configuration, read from the environment. Every variable
// and its default is listed in the README's configuration table; the envconfig default
// tags are the one source of the defaults a user sees, and defaults_test.go checks that
// the README, these tags and each package's DefaultConfig agree. A knob without a tag
// default is left zero here and takes the package's default (or means "off").
type Config struct {
	// Roles this process runs: any of web, bridge, asadapter, mediagw.
	Roles    []string `envconfig:"GATEWAY_ROLES" default:"web,bridge,asadapter,mediagw"`
	HTTPAddr string   `envconfig:"HTTP_ADDR" default:":8080"`
	// MetricsAddr, when set, serves /metrics on a listener of its own (a port only the
	// monitoring network reaches) instead of on HTTPAddr.
	MetricsAddr string `envconfig:"METRICS_ADDR"`
	// Instance names this process in logs, claims and welcome messages; LoadConfig and
	// DefaultConfig make it hostname-pid when unset, the one place it is defaulted.
	Instance string `envconfig:"INSTANCE"`
	LogLevel string `envconfig:"LOG_LEVEL" default:"info"`
	// Drain is how long SIGTERM waits for calls and connections to end before stopping.
	Drain time.Duration `envconfig:"SHUTDOWN_DRAIN" default:"20s"`
	// Grace is how long, within Drain, calls may go on after SIGTERM before they are
	// hung up (0: at once). A rolling restart with a grace longer than most calls ends
	// none of them early.
	Grace time.Duration `envconfig:"SHUTDOWN_GRACE" default:"0s"`

	RedisAddrs    []string `envconfig:"REDIS_ADDRS" default:"127.0.0.1:6379"`
	RedisCluster  bool     `envconfig:"REDIS_CLUSTER" default:"false"`
	RedisPassword string   `envconfig:"REDIS_PASSWORD"`
	RedisPool     int      `envconfig:"REDIS_POOL" default:"128"`

	DSMShards     int  `envconfig:"DSM_SHARDS" default:"16"`
	DSMOplogLen   int  `envconfig:"DSM_OPLOG_LEN" default:"256"`
	DSMFeedLen    int  `envconfig:"DSM_FEED_LEN" default:"100000"`
	DSMMaxFields  int  `envconfig:"DSM_MAX_FIELDS" default:"256"`
	DSMMaxValue   int  `envconfig:"DSM_MAX_VALUE_BYTES" default:"4096"`
	DSMMaxOps     int  `envconfig:"DSM_MAX_OPS_PER_MESSAGE" default:"32"`
	DSMNoKeyspace bool `envconfig:"DSM_NO_KEYSPACE" default:"false"`
	// DSMGrace is how long a client key may be without a connection before what its page
	// left (player objects, index entries, dedup records) is removed and its calls end.
	DSMGrace      time.Duration `envconfig:"DSM_GRACE" default:"2m"`
	DSMFeedMaxAge time.Duration `envconfig:"DSM_FEED_MAX_AGE" default:"10m"`

	DSMSecret       string        `envconfig:"DSM_SECRET"`
	DSMTokenTTL     time.Duration `envconfig:"DSM_TOKEN_TTL" default:"12h"`
	DSMMaxFrame     int64         `envconfig:"DSM_MAX_FRAME_BYTES" default:"32768"`
	DSMMaxSubs      int           `envconfig:"DSM_MAX_SUBS" default:"64"`
	DSMOpsPerSecond float64       `envconfig:"DSM_OPS_PER_SECOND" default:"200"`
	DSMSendQueue    int           `envconfig:"DSM_SEND_QUEUE" default:"256"`
	DSMMaxObjects   int           `envconfig:"DSM_MAX_OBJECTS" default:"16"`
	// DSMDemoSessions lets GET /session?user=U mint a session for any user: demos only.
	DSMDemoSessions bool `envconfig:"DSM_DEMO_SESSIONS" default:"false"`

	MGWURL          string        `envconfig:"MGW_URL"`
	MGWSecret       string        `envconfig:"MGW_SECRET"`
	MGWBindAddr     string        `envconfig:"MGW_BIND_ADDR" default:"127.0.0.1"`
	MGWPublicAddr   string        `envconfig:"MGW_PUBLIC_ADDR"`
	MGWPortMin      int           `envconfig:"MGW_PORT_MIN" default:"20000"`
	MGWPortMax      int           `envconfig:"MGW_PORT_MAX" default:"29999"`
	MGWPublicWSURL  string        `envconfig:"MGW_PUBLIC_WS_URL" default:"ws://127.0.0.1:8080"`
	MGWTokenTTL     time.Duration `envconfig:"MGW_TOKEN_TTL" default:"30s"`
	MGWMediaTimeout time.Duration `envconfig:"MGW_MEDIA_TIMEOUT" default:"30s"`
	MGWNoLatching   bool          `envconfig:"MGW_NO_LATCHING" default:"false"`
	MGWLatchWindow  time.Duration `envconfig:"MGW_LATCH_WINDOW" default:"1s"`
	MGWSetupTimeout time.Duration `envconfig:"MGW_SETUP_TIMEOUT" default:"5m"`
	MGWOrigins      []string      `envconfig:"MGW_ALLOWED_ORIGINS"`
	MGWEventURL     string        `envconfig:"MGW_EVENT_URL"`

	SIPListenUDP     string        `envconfig:"SIP_LISTEN_UDP" default:"0.0.0.0:5060"`
	SIPListenTCP     string        `envconfig:"SIP_LISTEN_TCP" default:"0.0.0.0:5060"`
	SIPListenTLS     string        `envconfig:"SIP_LISTEN_TLS"`
	SIPTLSCert       string        `envconfig:"SIP_TLS_CERT"`
	SIPTLSKey        string        `envconfig:"SIP_TLS_KEY"`
	SIPTLSRootCAs    string        `envconfig:"SIP_TLS_ROOT_CAS"`
	SIPAdvertiseHost string        `envconfig:"SIP_ADVERTISE_HOST"`
	SIPDomain        string        `envconfig:"SIP_DOMAIN"`
	SIPUser          string        `envconfig:"SIP_USER" default:"dsmgw"`
	SIPDisplayName   string        `envconfig:"SIP_DISPLAY_NAME"`
	SIPOutboundProxy string        `envconfig:"SIP_OUTBOUND_PROXY"`
	SIPAuthUser      string        `envconfig:"SIP_AUTH_USER"`
	SIPAuthPassword  string        `envconfig:"SIP_AUTH_PASSWORD"`
	SIPInviteTimeout time.Duration `envconfig:"SIP_INVITE_TIMEOUT" default:"60s"`
	// SIPCallLease is the lease of a call's claim: the calls of an instance that died or
	// was cut off from Redis go on through another instance this long after its last
	// renewal (asadapter.Config.ClaimTTL).
	SIPCallLease time.Duration `envconfig:"SIP_CALL_LEASE" default:"1s"`
	SIPDTMF      string        `envconfig:"SIP_DTMF" default:"rfc4733"`
	// Push-to-talk (docs/push-to-talk.md): the domain of talk group ids, and the UDP
	// ports of the floor channels (one per push-to-talk call).
	SIPTalkGroupDomain string `envconfig:"SIP_TALKGROUP_DOMAIN"`
	SIPFloorBindAddr   string `envconfig:"SIP_FLOOR_BIND_ADDR" default:"0.0.0.0"`
	SIPFloorPortMin    int    `envconfig:"SIP_FLOOR_PORT_MIN" default:"30000"`
	SIPFloorPortMax    int    `envconfig:"SIP_FLOOR_PORT_MAX" default:"30999"`

	// The SIP edge (asadapter/edge): the trust domain beside the outbound proxy, TLS
	// peer names and the CAs of their client certificates, direct peers' credentials
	// ("user:password"), and the bounds of each untrusted source.
	SIPTrustedPeers       []string `envconfig:"SIP_TRUSTED_PEERS"`
	SIPTrustedNames       []string `envconfig:"SIP_TRUSTED_NAMES"`
	SIPTLSClientCAs       string   `envconfig:"SIP_TLS_CLIENT_CAS"`
	SIPPeerCredentials    []string `envconfig:"SIP_PEER_CREDENTIALS"`
	SIPSourceRate         float64  `envconfig:"SIP_SOURCE_RATE" default:"20"`
	SIPSourceDropRate     float64  `envconfig:"SIP_SOURCE_DROP_RATE" default:"100"`
	SIPSourceTransactions int      `envconfig:"SIP_SOURCE_TRANSACTIONS" default:"16"`
	SIPSourceDialogs      int      `envconfig:"SIP_SOURCE_DIALOGS" default:"8"`
	SIPSourceConnections  int      `envconfig:"SIP_SOURCE_CONNECTIONS" default:"16"`

	UsersSecret    string        `envconfig:"USERS_SECRET"`
	UsersRegistrar string        `envconfig:"USERS_REGISTRAR"`
	UsersConfDom   string        `envconfig:"USERS_CONFERENCE_DOMAIN"`
	UsersExpires   time.Duration `envconfig:"USERS_EXPIRES" default:"600s"`
	UsersSubExp    time.Duration `envconfig:"USERS_SUBSCRIBE_EXPIRES" default:"600s"`
	UsersSession   time.Duration `envconfig:"USERS_SESSION_TTL" default:"120s"`
	// UsersDemoPassword is the digest password with which the demo sign-in registers
	// every demo user (DSM_DEMO_SESSIONS with SIP_DOMAIN set): "" registers them
	// without credentials, as the demo CSCF (deploy/kamailio.cfg) asks none.
	UsersDemoPassword string `envconfig:"USERS_DEMO_PASSWORD"`
}

// DemoSignIn reports whether a demo page's sign-in registers its user with the network:
// demo sessions on and a SIP domain to name the user in (sip:<user>@SIP_DOMAIN).
func (c Config) DemoSignIn() bool { return c.DSMDemoSessions && c.SIPDomain != "" }

// The roles of a gateway process.
const (
	RoleWeb       = "web"
	RoleBridge    = "bridge"
	RoleASAdapter = "asadapter"
	RoleMediaGW   = "mediagw"
)

// LoadConfig reads the configuration from the environment, names the instance
// hostname-pid unless INSTANCE is set, and checks it.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	for i, r := range c.Roles {
		c.Roles[i] = strings.TrimSpace(r)
	}
	if c.Instance == "" {
		c.Instance = defaultInstance()
	}
	return c, c.Validate()
}

// DefaultConfig returns the configuration of an empty environment: every knob at its
// envconfig default tag, the instance named hostname-pid. Secrets have no default, so it
// does not pass Validate as it is; the load generators fill in what they need and hand it
// to Build.
func DefaultConfig() Config {
	var c Config
	// The tags are checked by TestDefaultConfigIsAnEmptyEnvironment; a bad one is a
	// programming error caught there, so the error is not returned to every caller.
	_ = applyDefaultTags(&c)
	c.Instance = defaultInstance()
	return c
}

// defaultInstance is the instance name when none is configured: the host name tells an
// operator where the process runs, the PID tells two processes on one host apart.
func defaultInstance() string {
	h, _ := os.Hostname()
	if h == "" {
		h = "gateway"
	}
	return h + "-" + strconv.Itoa(os.Getpid())
}

// Validate checks what the roles need: known roles, an instance name, the secrets, and a
// media gateway for an AS adapter.
func (c Config) Validate() error {
	for _, r := range c.Roles {
		switch r {
		case RoleWeb, RoleBridge, RoleASAdapter, RoleMediaGW:
		default:
			return fmt.Errorf("config: GATEWAY_ROLES: unknown role %q", r)
		}
	}
	if c.Instance == "" {
		return fmt.Errorf("config: INSTANCE is empty (LoadConfig and DefaultConfig name it hostname-pid)")
	}
	if (c.Has(RoleBridge) || c.Has(RoleWeb)) && len(c.DSMSecret) < 16 {
		return fmt.Errorf("config: DSM_SECRET (at least 16 bytes) is required by the web and bridge roles")
	}
	if (c.Has(RoleMediaGW) || c.Has(RoleASAdapter)) && len(c.MGWSecret) < 16 {
		return fmt.Errorf("config: MGW_SECRET (at least 16 bytes) is required by the mediagw and asadapter roles")
	}
	if c.Has(RoleASAdapter) && !c.Has(RoleMediaGW) && c.MGWURL == "" {
		return fmt.Errorf("config: MGW_URL is required when the asadapter role runs without the mediagw role")
	}
	if c.Has(RoleASAdapter) && len(c.UsersSecret) < 16 {
		return fmt.Errorf("config: USERS_SECRET (at least 16 bytes) is required by the asadapter role")
	}
	return nil
}

// Has reports whether the process runs role.
func (c Config) Has(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}
