package ptt

import "errors"

// Sentinel errors of the floor channel.
var (
	// ErrConfig is a configuration the floor channels cannot run with.
	ErrConfig = errors.New("invalid floor channel configuration")
	// ErrNoPort means every floor port of the configured range is in use.
	ErrNoPort = errors.New("no free floor port")
	// ErrClosed is an operation on a channel whose Run has ended.
	ErrClosed = errors.New("floor channel closed")
)
