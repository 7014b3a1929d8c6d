package mixer

// jbSlots is the ring size of a jitter buffer: a power of two, so a sequence number
// masks to its slot. 32 frames are 640 ms, above any depth worth configuring.
const jbSlots = 32

// Limits of the jitter buffer's behaviour; each is a trade between latency and gaps.
const (
	// resyncGap: a sequence number this far from the expected one is a new stream (the
	// sender restarted, or a re-INVITE moved it), not a late or early packet: the buffer
	// starts over instead of dropping everything until the numbers meet again.
	resyncGap = 100
	// maxConceal: a run of missing frames longer than this (60 ms) is a pause of the
	// sender (hold, silence suppression), not loss: the buffer goes back to filling up to
	// its target, and starts again from the sender's next packet.
	maxConceal = 3
	// drainAfter: a buffer that holds more than target+2 frames for this many ticks (1 s)
	// drops one frame, so a sender whose clock runs a little fast, or a burst after a
	// stall, does not keep the delay high for the rest of the call.
	drainAfter = 50
)

// frameKind is what a jitter buffer yields for one tick.
type frameKind uint8

const (
	frameNone  frameKind = iota // nothing to play: filling, or the sender is silent
	frameAudio                  // a received frame
	frameLost                   // a frame is missing: conceal it
)

// jbSlot holds one received frame.
type jbSlot struct {
	seq   uint16
	valid bool
	codec Codec
	n     uint8 // payload bytes (at most FrameBytes)
	data  [FrameBytes]byte
}

// JitterStats counts what a jitter buffer did with its packets.
type JitterStats struct {
	Frames    uint64 // packets buffered
	Played    uint64 // frames played on time
	Late      uint64 // packets that came after their turn (dropped)
	Duplicate uint64 // packets received twice (dropped)
	Lost      uint64 // frames missing at their turn while later ones were there
	Overflow  uint64 // frames dropped because the buffer was full (a burst)
	Drained   uint64 // frames dropped to bring a lasting high delay down
	Resyncs   uint64 // restarts on a new SSRC or a sequence jump
}

// jitterBuffer reorders one sender's frames by RTP sequence number and plays them one
// per tick after a prefill of target frames. It holds at most depth frames ahead of the
// playout point. Not safe for concurrent use: the Participant's mutex guards it.
type jitterBuffer struct {
	target int // frames buffered before playout starts (delay)
	depth  int // frames held at most (bound on memory and delay)

	started bool   // a packet was seen since the last reset
	rebase  bool   // the next packet sets the playout point (after a pause)
	playing bool   // prefill done
	ssrc    uint32 // current sender
	next    uint16 // sequence number of the next frame to play
	highest uint16 // highest sequence number buffered
	count   int    // valid slots
	gapRun  int    // consecutive ticks without a frame
	above   int    // consecutive ticks with more than target+2 frames
	stats   JitterStats
	slots   [jbSlots]jbSlot
}

func newJitterBuffer(target, depth int) jitterBuffer {
	depth = min(max(depth, 1), jbSlots)
	target = min(max(target, 1), depth)
	return jitterBuffer{target: target, depth: depth}
}

// reset empties the buffer for a new stream starting at seq.
func (j *jitterBuffer) reset(ssrc uint32, seq uint16) {
	for i := range j.slots {
		j.slots[i].valid = false
	}
	if j.started {
		j.stats.Resyncs++
	}
	j.started, j.rebase, j.playing = true, false, false
	j.ssrc, j.next, j.highest, j.count, j.gapRun, j.above = ssrc, seq, seq, 0, 0, 0
}

// push buffers one frame.
func (j *jitterBuffer) push(ssrc uint32, seq uint16, codec Codec, payload []byte) {
	switch {
	case !j.started || ssrc != j.ssrc:
		j.reset(ssrc, seq)
	case j.rebase && j.count == 0:
		j.next, j.highest, j.rebase = seq, seq, false
	}
	d := int(int16(seq - j.next))
	switch {
	case d < -resyncGap || d > resyncGap:
		j.reset(ssrc, seq)
		d = 0
	case d < 0 && !j.playing && int(int16(j.highest-seq)) < j.depth:
		// An earlier packet overtaken by later ones while we still fill: play from it.
		j.next, d = seq, 0
	case d < 0:
		j.stats.Late++
		return
	}
	if d >= j.depth {
		// A burst beyond our depth: give up the oldest frames to make room.
		j.skip(d - j.depth + 1)
		j.stats.Overflow += uint64(d - j.depth + 1)
	}
	s := &j.slots[seq&(jbSlots-1)]
	if s.valid && s.seq == seq {
		j.stats.Duplicate++
		return
	}
	if !s.valid {
		j.count++
	}
	s.seq, s.valid, s.codec, s.n = seq, true, codec, uint8(copy(s.data[:], payload))
	if int16(seq-j.highest) > 0 {
		j.highest = seq
	}
	j.stats.Frames++
}

// skip moves the playout point n frames on, dropping what they held.
func (j *jitterBuffer) skip(n int) {
	for ; n > 0; n-- {
		s := &j.slots[j.next&(jbSlots-1)]
		if s.valid && s.seq == j.next {
			s.valid = false
			j.count--
		}
		j.next++
	}
}

// pop yields the frame of this tick: its payload is copied to dst (FrameBytes long) and
// its length and codec returned with frameAudio; frameLost asks for concealment;
// frameNone means nothing to play.
func (j *jitterBuffer) pop(dst []byte) (frameKind, int, Codec) {
	if !j.started || j.rebase {
		return frameNone, 0, 0
	}
	if !j.playing {
		if j.count < j.target {
			return frameNone, 0, 0
		}
		j.playing = true
	}
	if j.count > j.target+2 {
		if j.above++; j.above >= drainAfter {
			j.above = 0
			j.stats.Drained++
			j.skip(1)
		}
	} else {
		j.above = 0
	}
	s := &j.slots[j.next&(jbSlots-1)]
	if s.valid && s.seq == j.next {
		n, c := copy(dst, s.data[:s.n]), s.codec
		s.valid = false
		j.count--
		j.next++
		j.gapRun = 0
		j.stats.Played++
		return frameAudio, n, c
	}
	j.next++
	j.gapRun++
	if j.count > 0 {
		j.stats.Lost++
		return frameLost, 0, 0
	}
	if j.gapRun > maxConceal {
		// The sender paused: fill up again from its next packet.
		j.playing, j.rebase = false, true
		return frameNone, 0, 0
	}
	return frameLost, 0, 0
}
