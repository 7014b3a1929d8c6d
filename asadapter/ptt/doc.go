// Package ptt is the gateway's side of push-to-talk floor control for one call of a
// "poc" player: the floor channel (a UDP port of the AS adapter, named in the offer's
// "m=application <port> udp MCPTT" line) and the call's floorctl.Participant, which
// acts for the page. The call's owner turns the page's DSM intents into Request and
// Release, and gets back through Hooks the media gateway gate to set and the floor
// state to write for the page.
//
// The channel lives in the AS adapter rather than in the media gateway because the
// participant is call control: it is driven by DSM fields and writes DSM fields, both of
// which only the adapter touches. In the media gateway every floor message would cost a
// round trip to the adapter (an event, then an API call back), with two owners of one
// state machine; what the media plane needs from floor control is one bit, the gate of
// the termination, which the adapter sets through the media gateway's API before it
// tells the page. See docs/push-to-talk.md.
package ptt
