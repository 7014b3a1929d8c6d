package gateway

import (
	"net"

	"dsmgw/asadapter"
	"dsmgw/otbridge"
	"dsmgw/store"
)

// Option overrides what the environment does not reach, for the load generators that run
// the gateway's own wiring (cmd/dsmbench, cmd/callbench): a listener they opened, or a
// component knob that is no user setting (a test-only policy, a worker count). Production
// passes none.
type Option func(*options)

// options are the overrides given to Build.
type options struct {
	listener net.Listener
	store    []func(*store.Config)
	janitor  []func(*store.JanitorConfig)
	bridge   []func(*otbridge.Config)
	adapter  []func(*asadapter.Config)
}

// WithListener makes Build serve HTTP on l instead of listening on HTTPAddr: a caller
// that must know the address before Build (to put it in MGW_PUBLIC_WS_URL) opens it
// first. The App owns l from then on and closes it, on an error of Build too.
func WithListener(l net.Listener) Option { return func(o *options) { o.listener = l } }

// WithStoreConfig lets f change the store's configuration after Build mapped Config
// onto it.
func WithStoreConfig(f func(*store.Config)) Option {
	return func(o *options) { o.store = append(o.store, f) }
}

// WithJanitorConfig lets f change the janitor's configuration after Build mapped Config
// onto it (dsmsoak: a sweep interval shorter than a production grace period's eighth).
func WithJanitorConfig(f func(*store.JanitorConfig)) Option {
	return func(o *options) { o.janitor = append(o.janitor, f) }
}

// WithBridgeConfig lets f change the bridge's configuration after Build mapped Config
// onto it (dsmbench: the AllowAll policy of a load test).
func WithBridgeConfig(f func(*otbridge.Config)) Option {
	return func(o *options) { o.bridge = append(o.bridge, f) }
}

// WithAdapterConfig lets f change the AS adapter's configuration after Build mapped
// Config onto it (callbench: the worker count).
func WithAdapterConfig(f func(*asadapter.Config)) Option {
	return func(o *options) { o.adapter = append(o.adapter, f) }
}

// apply runs every override of one kind on c.
func apply[T any](fs []func(*T), c *T) {
	for _, f := range fs {
		f(c)
	}
}
