// Package mediagw is the media gateway of dsmgw: it owns terminations (a UDP RTP/RTCP
// port pair toward the SIP side and a WebSocket toward the browser) and relays RTP and
// RTCP between them, one packet per binary WebSocket message. An authenticated JSON HTTP
// API (docs/mediagw-api.md) adds, modifies and removes terminations; Client is its Go
// client, used by the AS adapter. The relay checks every packet, drops and counts what is
// not valid, never blocks one call on another, and ends a termination whose media stopped.
package mediagw
