package gateway

import (
	"context"
	"io"
	"net"
	"os"
	"reflect"
	"strconv"
	"testing"

	"dsmgw/internal/testpeer"
)

// A Build that fails late (a SIP port is taken, after the HTTP listener, the Redis
// client and the media gateway were set up) leaves nothing open: the HTTP port and both
// SIP ports can be bound again at once.
func TestBuildErrorClosesWhatItOpened(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network+" port taken", func(t *testing.T) {
			cfg := testConfig(t, r.Addr)
			cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(testpeer.FreePort(t))
			sip := "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
			var taken io.Closer
			var err error
			if network == "udp" {
				taken, err = net.ListenPacket("udp", sip)
			} else {
				taken, err = net.Listen("tcp", sip)
			}
			if err != nil {
				t.Fatal(err)
			}
			cfg.SIPListenUDP, cfg.SIPListenTCP = sip, sip

			app, buildErr := Build(context.Background(), cfg, nil)
			if buildErr == nil {
				app.Close()
				t.Fatal("Build succeeded with its SIP port taken")
			}
			taken.Close()
			for _, a := range []struct{ network, addr string }{{"tcp", cfg.HTTPAddr}, {"tcp", sip}, {"udp", sip}} {
				var c io.Closer
				if a.network == "udp" {
					c, err = net.ListenPacket("udp", a.addr)
				} else {
					c, err = net.Listen("tcp", a.addr)
				}
				if err != nil {
					t.Fatalf("after Build failed (%v), %s %s is still taken: %v", buildErr, a.network, a.addr, err)
				}
				c.Close()
			}
		})
	}
}

// An invalid Config fails Build before anything is opened, and a listener handed over
// with WithListener is closed all the same: the App owns it.
func TestBuildInvalidClosesGivenListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	cfg := DefaultConfig()
	cfg.Instance = ""
	if _, err := Build(context.Background(), cfg, nil, WithListener(l)); err == nil {
		t.Fatal("Build accepted a Config without an instance")
	}
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the given listener was not closed: %v", err)
	}
	l2.Close()
}

// DefaultConfig is what LoadConfig reads from an environment that sets none of the
// variables: the default tags are applied as envconfig applies them.
func TestDefaultConfigIsAnEmptyEnvironment(t *testing.T) {
	for _, v := range envVars(t) {
		t.Setenv(v.name, "") // restored when the test ends
		os.Unsetenv(v.name)
	}
	// The secrets have no default and LoadConfig refuses to go without them.
	secrets := map[string]string{"DSM_SECRET": "dsm-secret-0123456789", "MGW_SECRET": "mgw-secret-0123456789",
		"USERS_SECRET": "users-secret-0123456789"}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	got, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.DSMSecret, want.MGWSecret, want.UsersSecret = secrets["DSM_SECRET"], secrets["MGW_SECRET"], secrets["USERS_SECRET"]
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("LoadConfig in an empty environment:\n%+v\nDefaultConfig:\n%+v", got, want)
	}
	if err := applyDefaultTags(&Config{}); err != nil {
		t.Fatal(err)
	}
	if want.Instance != defaultInstance() || want.Instance == "" {
		t.Fatalf("instance %q", want.Instance)
	}
}

// envVar is one variable of Config as its tags declare it.
type envVar struct {
	name   string // the envconfig tag
	field  string // the Config field
	def    string // the default tag
	hasDef bool
}

// envVars lists Config's variables from its struct tags, in field order.
func envVars(t *testing.T) []envVar {
	t.Helper()
	var vs []envVar
	ct := reflect.TypeFor[Config]()
	for i := range ct.NumField() {
		f := ct.Field(i)
		name := f.Tag.Get("envconfig")
		if name == "" {
			t.Fatalf("Config.%s has no envconfig tag: every knob is a variable", f.Name)
		}
		def, ok := f.Tag.Lookup("default")
		vs = append(vs, envVar{name: name, field: f.Name, def: def, hasDef: ok})
	}
	return vs
}

// MGW_URL listing several media gateways (the mediagw role running apart on several
// instances) gives the AS adapter a pool of them, run with the app; one gives it that one.
func TestBuildMediaGatewayPool(t *testing.T) {
	r := testpeer.StartRedis(t, testpeer.RedisOptions{})
	for urls, pool := range map[string]bool{"http://127.0.0.1:1": false, "http://127.0.0.1:1, http://127.0.0.1:2": true} {
		t.Run(urls, func(t *testing.T) {
			cfg := testConfig(t, r.Addr)
			cfg.Roles = []string{RoleASAdapter}
			cfg.MGWURL = urls
			cfg.SIPListenUDP = "127.0.0.1:" + strconv.Itoa(testpeer.FreeUDPPort(t))
			cfg.SIPListenTCP = cfg.SIPListenUDP
			app, err := Build(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			if (app.mgwPool != nil) != pool {
				t.Fatalf("MGW_URL %q: pool %v, want %v", urls, app.mgwPool != nil, pool)
			}
		})
	}
}
