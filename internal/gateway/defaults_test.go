package gateway

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"dsmgw/asadapter"
	"dsmgw/asadapter/users"
	"dsmgw/mediagw"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// knob ties a variable to the default of the package that owns the knob: the package's
// DefaultConfig is what a zero field becomes, so the envconfig tag must say the same.
type knob struct {
	env string
	def func() any
}

// packageKnobs are the variables whose knob a role package defaults, with that default.
// A package that gains a knob adds its line here.
func packageKnobs() []knob {
	st, br, jn := store.DefaultConfig(), otbridge.DefaultConfig(), store.DefaultJanitorConfig()
	ad, us, mg := asadapter.DefaultConfig(), users.DefaultConfig(), mediagw.DefaultConfig()
	return []knob{
		{"DSM_SHARDS", func() any { return st.Shards }},
		{"DSM_OPLOG_LEN", func() any { return st.OplogLen }},
		{"DSM_FEED_LEN", func() any { return st.FeedLen }},
		{"DSM_MAX_FIELDS", func() any { return st.MaxFields }},
		{"DSM_MAX_VALUE_BYTES", func() any { return st.Limits.MaxValueBytes }},
		{"DSM_MAX_OPS_PER_MESSAGE", func() any { return st.Limits.MaxOps }},
		{"DSM_GRACE", func() any { return jn.Grace }},
		{"DSM_FEED_MAX_AGE", func() any { return jn.FeedMaxAge }},

		{"DSM_TOKEN_TTL", func() any { return br.TokenTTL }},
		{"DSM_MAX_FRAME_BYTES", func() any { return br.MaxFrameBytes }},
		{"DSM_MAX_SUBS", func() any { return br.MaxSubs }},
		{"DSM_OPS_PER_SECOND", func() any { return br.OpsPerSecond }},
		{"DSM_SEND_QUEUE", func() any { return br.SendQueue }},
		{"DSM_DEMO_SESSIONS", func() any { return br.DemoSessions }},
		{"DSM_MAX_OBJECTS", func() any { return br.MaxObjects }},

		{"DSM_NO_KEYSPACE", func() any { return ad.NoKeyspace }},
		{"SIP_LISTEN_UDP", func() any { return ad.ListenUDP }},
		{"SIP_LISTEN_TCP", func() any { return ad.ListenTCP }},
		{"SIP_USER", func() any { return ad.User }},
		{"SIP_INVITE_TIMEOUT", func() any { return ad.InviteTimeout }},
		{"SIP_CALL_LEASE", func() any { return ad.ClaimTTL }},
		{"SIP_DTMF", func() any { return ad.DTMF }},
		{"SIP_SOURCE_RATE", func() any { return ad.Edge.SourceRate }},
		{"SIP_SOURCE_DROP_RATE", func() any { return ad.Edge.SourceDropRate }},
		{"SIP_SOURCE_TRANSACTIONS", func() any { return ad.Edge.SourceTransactions }},
		{"SIP_SOURCE_DIALOGS", func() any { return ad.Edge.SourceDialogs }},
		{"SIP_SOURCE_CONNECTIONS", func() any { return ad.Edge.SourceConnections }},
		{"SIP_FLOOR_BIND_ADDR", func() any { return ad.Floor.BindAddr }},
		{"SIP_FLOOR_PORT_MIN", func() any { return ad.Floor.PortMin }},
		{"SIP_FLOOR_PORT_MAX", func() any { return ad.Floor.PortMax }},

		{"USERS_EXPIRES", func() any { return us.Expires }},
		{"USERS_SUBSCRIBE_EXPIRES", func() any { return us.SubscribeExpires }},
		{"USERS_SESSION_TTL", func() any { return us.SessionTTL }},

		{"MGW_BIND_ADDR", func() any { return mg.BindAddr }},
		{"MGW_PORT_MIN", func() any { return mg.PortMin }},
		{"MGW_PORT_MAX", func() any { return mg.PortMax }},
		{"MGW_TOKEN_TTL", func() any { return mg.TokenTTL }},
		{"MGW_MEDIA_TIMEOUT", func() any { return mg.MediaTimeout }},
		{"MGW_SETUP_TIMEOUT", func() any { return mg.SetupTimeout }},
		{"MGW_NO_LATCHING", func() any { return mg.DisableLatching }},
		{"MGW_LATCH_WINDOW", func() any { return mg.LatchWindow }},
	}
}

// gatewayOnlyKnobs are the variables with a default that no role package has: the
// process's own settings, and wiring the gateway decides (the media URL base follows
// HTTP_ADDR).
var gatewayOnlyKnobs = []string{
	"GATEWAY_ROLES", "HTTP_ADDR", "LOG_LEVEL", "SHUTDOWN_DRAIN", "SHUTDOWN_GRACE",
	"REDIS_ADDRS", "REDIS_CLUSTER", "REDIS_POOL", "MGW_PUBLIC_WS_URL",
}

// readmeRow is one variable of the README's configuration table.
type readmeRow struct {
	def     string // the literal default, without backticks
	literal bool   // def is a value (in backticks), not a description such as "hostname-pid"
}

var backticked = regexp.MustCompile("`([^`]*)`")

// readmeTable parses the README's configuration table: a row names one or more variables
// in backticks, then either one literal default per variable, one shared by all, or a
// description (no backticks) or nothing.
func readmeTable(t *testing.T) map[string]readmeRow {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	rows := map[string]readmeRow{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Fatalf("README row %q: want | variable | default | meaning |", line)
		}
		var names []string
		for _, m := range backticked.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
		defs := backticked.FindAllStringSubmatch(cells[2], -1)
		for i, n := range names {
			var r readmeRow
			switch {
			case len(defs) == 0:
				r = readmeRow{def: strings.TrimSpace(cells[2])}
			case len(defs) == len(names):
				r = readmeRow{def: defs[i][1], literal: true}
			case len(defs) == 1:
				r = readmeRow{def: defs[0][1], literal: true}
			default:
				t.Fatalf("README row %q: %d defaults for %d variables", line, len(defs), len(names))
			}
			if _, dup := rows[n]; dup {
				t.Fatalf("README lists %s twice", n)
			}
			rows[n] = r
		}
	}
	return rows
}

// TestDefaultsAgree holds the house rule on defaults: the README's configuration table,
// the envconfig tags of Config and each role package's DefaultConfig say the same thing
// for every knob they share, and every variable is accounted for.
func TestDefaultsAgree(t *testing.T) {
	readme := readmeTable(t)
	vars := envVars(t)
	def := reflect.ValueOf(DefaultConfig())
	tagged := map[string]envVar{}
	for _, v := range vars {
		tagged[v.name] = v
		r, ok := readme[v.name]
		switch {
		case !ok:
			t.Errorf("%s (Config.%s) is missing from the README's configuration table", v.name, v.field)
		case v.hasDef && !r.literal:
			t.Errorf("%s: the README says %q, the tag default is %q", v.name, r.def, v.def)
		case !v.hasDef && r.literal:
			t.Errorf("%s: the README gives the default %q, the tag none", v.name, r.def)
		case v.hasDef && !sameValue(t, def.FieldByName(v.field), r.def):
			t.Errorf("%s: the README's default %q differs from the tag's %q", v.name, r.def, v.def)
		}
	}
	for n := range readme {
		if _, ok := tagged[n]; !ok {
			t.Errorf("the README lists %s, which Config does not read", n)
		}
	}

	accounted := map[string]string{}
	for _, k := range packageKnobs() {
		v, ok := tagged[k.env]
		if !ok {
			t.Errorf("package knob %s is not a Config variable", k.env)
			continue
		}
		accounted[k.env] = "a package's DefaultConfig"
		gw, pkg := fmt.Sprint(def.FieldByName(v.field).Interface()), fmt.Sprint(k.def())
		if gw != pkg {
			t.Errorf("%s: the gateway's default %s differs from its package's %s", k.env, gw, pkg)
		}
	}
	for list, names := range map[string][]string{"gatewayOnlyKnobs": gatewayOnlyKnobs} {
		for _, n := range names {
			if prev, dup := accounted[n]; dup {
				t.Errorf("%s is in %s and in %s", n, list, prev)
			}
			accounted[n] = list
		}
	}
	for _, v := range vars {
		if _, ok := accounted[v.name]; v.hasDef && !ok {
			t.Errorf("%s has a default but is in no list: add it to packageKnobs (or gatewayOnlyKnobs)", v.name)
		}
	}
}

// sameValue reports whether s, parsed as f's type, equals f.
func sameValue(t *testing.T, f reflect.Value, s string) bool {
	t.Helper()
	p := reflect.New(f.Type()).Elem()
	if err := setFromString(p, s); err != nil {
		t.Errorf("README default %q: %v", s, err)
		return false
	}
	return reflect.DeepEqual(p.Interface(), f.Interface())
}
