package mediagw

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

// TestDefaultConfigIsWhatNewFills holds the one-source rule: every knob DefaultConfig
// sets is what withDefaults gives a zero field, and a config already at the defaults
// comes back unchanged.
func TestDefaultConfigIsWhatNewFills(t *testing.T) {
	t.Parallel()
	req := Config{PublicWSURL: "ws://127.0.0.1:1", Secret: testSecret}
	got, err := req.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	d := DefaultConfig()
	dv, gv := reflect.ValueOf(d), reflect.ValueOf(got)
	for i := range dv.NumField() {
		name, f := dv.Type().Field(i).Name, dv.Field(i)
		if f.IsZero() {
			continue
		}
		if f.Kind() == reflect.Pointer {
			if gv.Field(i).IsNil() {
				t.Errorf("%s: nil after withDefaults", name)
			}
			continue
		}
		if !reflect.DeepEqual(f.Interface(), gv.Field(i).Interface()) {
			t.Errorf("%s: DefaultConfig %v, withDefaults %v", name, f.Interface(), gv.Field(i).Interface())
		}
	}
	if got.PublicAddr != got.BindAddr || got.MaxTerminations != (got.PortMax-got.PortMin+1)/2 {
		t.Errorf("derived defaults: public %q, max terminations %d", got.PublicAddr, got.MaxTerminations)
	}
	again, err := got.withDefaults()
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("withDefaults not idempotent: %+v, %v", again, err)
	}
}

// TestNilRegistererAndLogger: nil means a private registry and a discarding logger, and
// the gateway's own logger carries its component key.
func TestNilRegistererAndLogger(t *testing.T) {
	t.Parallel()
	cfg := Config{PublicWSURL: "ws://127.0.0.1:1", Secret: testSecret, PortMin: 20000, PortMax: 29999}
	g, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	// Two gateways on nil registries do not collide (each has its own).
	g, err = New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Close()

	var buf bytes.Buffer
	g, err = New(cfg, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tm, err := g.addLocal(AddLocalRequest{Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	g.end(tm, EventSetupTimeout, "test")
	g.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for _, l := range lines {
		if !strings.Contains(l, "component=mediagw") || strings.Contains(l, "msg=mediagw:") {
			t.Errorf("log line without the component key or with a prefix: %s", l)
		}
	}
	if len(lines) < 2 {
		t.Errorf("want the added and ended lines, got %q", buf.String())
	}
}
