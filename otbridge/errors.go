package otbridge

import (
	"errors"
	"fmt"
)

// Sentinel errors of the bridge.
var (
	ErrSecret      = errors.New("otbridge: token secret too short")
	ErrNoInstance  = errors.New("otbridge: Config.Instance is required")
	ErrBadToken    = errors.New("malformed token")
	ErrForgedToken = errors.New("token signature does not match")
	ErrExpired     = errors.New("token expired")
	ErrClosed      = errors.New("otbridge: bridge is shut down")
)

// Protocol error codes (docs/dsm-protocol.md, "Errors and limits").
const (
	CodeBadJSON          = "bad_json"
	CodeBadMessage       = "bad_message"
	CodeNotAuthenticated = "not_authenticated"
	CodeBadToken         = "bad_token"
	CodeForbidden        = "forbidden"
	CodeTooManyOps       = "too_many_ops"
	CodeValueTooLong     = "value_too_long"
	CodeTooManyFields    = "too_many_fields"
	CodeTooManySubs      = "too_many_subs"
	CodeRateLimited      = "rate_limited"
	CodeInflight         = "inflight"
	CodeExpectFailed     = "expect_failed"
	CodeStale            = "stale"
	CodeBaseAhead        = "base_ahead"
	CodeUnavailable      = "unavailable"
	CodeSeqReused        = "seq_reused"
	CodeTooManyObjects   = "too_many_objects"
	CodeInternal         = "internal"
)

// WebSocket close codes the bridge uses.
const (
	CloseBadToken     = 4001 // bad_token: forged, malformed or expired token
	CloseSlowConsumer = 4008 // the send queue was full
	CloseReset        = 4010 // an object of this connection was removed (its owner was gone); resume
	CloseRateLimited  = 4029 // the client kept sending far beyond its rate after rate_limited
	CloseInvalidUTF8  = 1007 // a text frame that is not UTF-8 (RFC 6455 8.1)
	CloseTooBig       = 1009 // frame over MaxFrameBytes (sent by gorilla/websocket)
	CloseUnavailable  = 1011 // Redis did not answer a commit: reconnect and resend
	CloseGoingAway    = 1001 // the gateway is shutting down
)

// ProtoError is a refusal with a protocol error code, sent to the client as an error or a
// nack.
type ProtoError struct {
	Code string
	Msg  string
}

func (e *ProtoError) Error() string { return e.Code + ": " + e.Msg }

func protoErr(code, format string, args ...any) *ProtoError {
	return &ProtoError{Code: code, Msg: fmt.Sprintf(format, args...)}
}
