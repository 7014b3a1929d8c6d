package otbridge

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

// A zero Config is DefaultConfig; a set field is kept.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	if got := (Config{}).withDefaults(); !reflect.DeepEqual(got, DefaultConfig()) {
		t.Fatalf("zero Config became %+v; want %+v", got, DefaultConfig())
	}
	got := Config{TokenTTL: time.Minute, Policy: AllowAll{}}.withDefaults()
	want := DefaultConfig()
	want.TokenTTL, want.Policy = time.Minute, AllowAll{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("partial Config became %+v; want %+v", got, want)
	}
}

// Secret and Instance have no default: New refuses a Config without them before it
// touches anything (nil store and feed are never used).
func TestConfigRequired(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		cfg  Config
		want error
	}{
		"no secret":    {Config{Instance: "gw1"}, ErrSecret},
		"short secret": {Config{Secret: []byte("short"), Instance: "gw1"}, ErrSecret},
		"no instance":  {Config{Secret: testSecret}, ErrNoInstance},
	} {
		if _, err := New(c.cfg, nil, nil, nil, nil); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v; want %v", name, err, c.want)
		}
	}
}
