// Package floorctl is the protocol core of push-to-talk in dsmgw: 3GPP MCPTT on-network
// floor control (TS 24.380), pure and without I/O.
//
//   - Message, with Marshal, MarshalTo and Unmarshal, codes the floor control messages of
//     TS 24.380 section 8.2 (RTCP APP packets named "MCPT", RFC 3550 section 6.7); Scanner
//     finds them in a datagram, compound RTCP included.
//   - Server is the floor control server of one talk group (TS 24.380 section 6.3,
//     simplified): one talker, a priority-ordered FIFO queue, a maximum talk time ended by
//     Floor Revoke. The demo conference server drives it.
//   - Participant is the floor participant of one call (TS 24.380 section 6.2,
//     simplified), acting for a page: it turns the page's intents into messages, the
//     server's messages into a View the gateway writes to the DSM, and retransmits with
//     the T100/T101 timers.
//   - The SDP helpers build and parse the "m=application <port> udp MCPTT" media line and
//     its "a=fmtp:MCPTT" parameters (TS 24.380 sections 12 and 14).
//
// Neither state machine starts a goroutine or reads a clock of its own: the owner feeds
// inputs, reads the messages to send, and calls Tick when Deadline says so. See
// docs/push-to-talk.md for the choice of MCPTT over OMA PoC and the list of messages and
// fields implemented.
package floorctl
