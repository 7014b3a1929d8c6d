package main

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"dsmgw/imsdemo"
)

// The configuration table of docs/imsdemo.md lists every variable, and each default it
// gives as a literal is the one the process uses (imsdemo.DefaultConfig, or the
// envconfig tag of the process's own knobs).
func TestDocsTableAgreesWithDefaults(t *testing.T) {
	b, err := os.ReadFile("../../docs/imsdemo.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{} // variable → default cell ("" when not a literal)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `"+envPrefix+"_") {
			continue
		}
		cells := strings.Split(line, "|")
		names := strings.Split(cells[1], ",")
		defs := strings.Split(cells[2], ",")
		for i, n := range names {
			n = strings.Trim(strings.TrimSpace(n), "`")
			d := ""
			if len(defs) == len(names) {
				d = strings.TrimSpace(defs[i])
			}
			if strings.HasPrefix(d, "`") {
				documented[n] = strings.Trim(d, "`")
			} else {
				documented[n] = ""
			}
		}
	}
	d := imsdemo.DefaultConfig()
	want := map[string]any{
		"LISTEN_UDP": d.ListenUDP, "LISTEN_TCP": d.ListenTCP, "ECHO_USER": d.EchoUser,
		"RTP_BIND_ADDR": d.RTPBindAddr, "RTP_PORT_MIN": d.RTPPortMin, "RTP_PORT_MAX": d.RTPPortMax,
		"MEDIA_TIMEOUT": d.MediaTimeout, "MAX_ROOMS": d.MaxRooms, "ROOM_SIZE": d.Mixer.MaxParticipants,
		"JITTER_TARGET": d.Mixer.JitterTarget, "JITTER_DEPTH": d.Mixer.JitterDepth,
		"SUBSCRIBE_MIN_EXPIRES": d.SubscribeMinExpires, "SUBSCRIBE_MAX_EXPIRES": d.SubscribeMaxExpires,
		"SUBSCRIBE_DEFAULT_EXPIRES": d.SubscribeDefaultExpires, "MAX_SUBSCRIPTIONS": d.MaxSubscriptions,
		"DEPARTED_LINGER": d.DepartedLinger, "DRAIN": d.DrainTimeout,
		"FLOOR_MAX_TALK": d.Floor.MaxTalk, "FLOOR_REVOKE_GRACE": d.Floor.RevokeGrace,
		"FLOOR_QUEUE_LIMIT": d.Floor.QueueLimit,
	}
	typ := reflect.TypeOf(env{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("envconfig")
		doc, ok := documented[envPrefix+"_"+name]
		if !ok {
			t.Errorf("%s_%s is not in the docs' table", envPrefix, name)
			continue
		}
		w, known := want[name]
		if tag, ok := f.Tag.Lookup("default"); ok {
			w, known = tag, true
		}
		if !known {
			if doc != "" {
				t.Errorf("%s_%s: the docs give %q, the code has no fixed default", envPrefix, name, doc)
			}
			continue
		}
		if !same(doc, w) {
			t.Errorf("%s_%s: the docs say %q, the code %v", envPrefix, name, doc, w)
		}
	}
}

func same(doc string, v any) bool {
	switch v := v.(type) {
	case time.Duration:
		d, err := time.ParseDuration(doc)
		return err == nil && d == v
	case int:
		return doc == strconv.Itoa(v)
	case string:
		return doc == v
	}
	return false
}
