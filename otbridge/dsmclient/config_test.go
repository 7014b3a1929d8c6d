package dsmclient

import (
	"context"
	"testing"
	"time"
)

// A zero Config takes every knob from DefaultConfig; a set one is kept; the token is
// what TokenFunc returns when none is given.
func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	d := DefaultConfig()
	got := Config{Token: "tok", WriteTimeout: time.Second}.withDefaults()
	if got.Dialer != d.Dialer || got.ReconnectMin != d.ReconnectMin || got.ReconnectMax != d.ReconnectMax {
		t.Fatalf("defaults not filled: %+v", got)
	}
	if got.WriteTimeout != time.Second {
		t.Fatalf("WriteTimeout %s; want the 1s given", got.WriteTimeout)
	}
	if got.Log == nil {
		t.Fatal("nil Log not replaced")
	}
	if tok, err := got.TokenFunc(context.Background()); tok != "tok" || err != nil {
		t.Fatalf("TokenFunc = %q, %v", tok, err)
	}
}
