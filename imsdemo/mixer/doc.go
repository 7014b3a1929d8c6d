// Package mixer is the audio core of the demo conference server: G.711 µ-law and A-law
// frames in, one 20 ms mix per participant out, with no network and no SIP.
//
// A Mixer is one room. Each Participant has a small jitter buffer that reorders its RTP
// packets by sequence number; every tick (driven by a Scheduler's clock, never by packet
// arrivals) the mixer takes one frame from each buffer, sums the frames of everyone who
// may speak, and sends each listener the sum without its own frame (a saturating sum,
// clipped to 16 bits), encoded in that listener's codec with its own RTP sequence,
// timestamp and SSRC.
//
// Two gates per participant decide who is heard and who hears: SetSpeak and SetListen.
// The conference server closes both for a participant on hold; a talk group with floor
// control opens SetSpeak for the floor holder only.
//
// Push and Tick do not allocate: buffers are sized at Add, so a room of any size mixes
// without garbage.
package mixer
