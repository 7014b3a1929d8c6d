// AudioWorklet processor of the media player (registered as "dsm-media"). It runs on the
// audio rendering thread:
//
//   capture: microphone input at the context rate → box-filter decimation to 8 kHz →
//            20 ms frames of 160 Int16 samples, posted to the main thread (which encodes
//            G.711 and sends RTP);
//   playout: 8 kHz Int16 frames from the main thread (decoded RTP, with their sequence
//            number) → a small jitter buffer ordered by sequence number → linear
//            interpolation up to the context rate.
//
// It posts {type:'stats'} about twice a second: frames captured, received, played, and
// underruns, late and overflow drops, and the playout target (targetMs). Self-contained on purpose (no imports), so it loads
// wherever AudioWorklet does.

const FRAME = 160; // 20 ms at 8 kHz, the G.711 packet size used by SIP phones
const RATE = 8000;
const RAMP = 16; // samples (2 ms) of the ramp that bridges a discontinuity
// The adaptive playout target: ADAPT_MIN_MS to ADAPT_MAX_MS, recomputed every
// ADAPT_EVERY frames from the arrival times of the last ADAPT_WINDOW (2.5 s); the margin
// covers a render quantum (2.7 ms at 48 kHz) and the main thread's hand-over; an underrun
// raises the floor by UNDERRUN_STEP_MS, which fades by FLOOR_FADE_MS a second.
const ADAPT_MIN_MS = 30;
const ADAPT_MAX_MS = 180;
const ADAPT_WINDOW = 125;
const ADAPT_EVERY = 25;
const ADAPT_MARGIN_MS = 10;
const UNDERRUN_STEP_MS = 20;
const FLOOR_FADE_MS = 5;

// seqBefore reports whether 16-bit sequence number a comes before b (RFC 3550 wrap-around).
function seqBefore(a, b) {
  return ((b - a) & 0xffff) !== 0 && ((b - a) & 0xffff) < 0x8000;
}

class MediaProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    // Capture: sampleRate is the worklet scope's context rate.
    this.step = sampleRate / RATE; // input samples per 8 kHz sample
    this.acc = 0;
    this.accN = 0;
    this.pos = 0; // input samples consumed toward the next output sample
    this.frame = new Int16Array(FRAME);
    this.fill = 0;
    this.capture = o.capture !== false;
    // Playout: start once `targetMs` of audio is waiting (a frame, then silence until its
    // first sample has waited targetMs - 20); keep at most `max` frames (200 ms) and drop
    // the oldest beyond, so that delay never builds up after a burst. jitterFrames fixes
    // the target (frames of 20 ms); without it the target adapts (adapt()): it starts
    // at 30 ms, one frame and the 10 ms a render quantum and the main
    // thread's hand-over need on a quiet path, and follows the arrival jitter measured.
    this.fixed = o.jitterFrames > 0;
    this.targetMs = this.fixed ? o.jitterFrames * 20 : ADAPT_MIN_MS;
    this.target = Math.max(1, Math.round(this.targetMs / 20)); // frames the drain keeps at the least
    this.wait = -1; // 8 kHz samples of silence left before the start; -1: not counting
    this.max = o.maxFrames || 10;
    // Arrival jitter (adaptive target): each in-order frame's transit (arrival time minus
    // its place in the stream) is kept for the last ADAPT_WINDOW frames; the target covers
    // the 95th percentile of how much later than the earliest a frame arrived, plus a
    // margin. An underrun adds to a floor that fades, so that a path that just proved
    // worse than measured gets room at once.
    this.transits = new Float64Array(ADAPT_WINDOW);
    this.nTransit = 0;
    this.base = -1; // unwrapped sequence number of the first frame
    this.lastUnwrapped = 0;
    this.floorMs = 0;
    this.floorAt = 0;
    this.queue = [];
    this.playing = false;
    this.cur = null;
    this.curIdx = 0;
    this.lastSeq = -1;
    this.a = 0;
    this.b = 0;
    this.frac = 0;
    this.inc = RATE / sampleRate;
    this.stats = { captured: 0, received: 0, played: 0, underruns: 0, late: 0, overflow: 0, level: 0, lost: 0, concealed: 0, depth: 0, drained: 0, targetMs: Math.round(this.targetMs) };
    // Drain: a burst, or a start with frames waiting, leaves the queue deeper than
    // target for good (the two ends' clocks are the same rate); when the queue never fell
    // to target during a second of playout, the frames beyond are dropped, so that the
    // delay returns to target instead of staying up to max.
    this.minDepth = Infinity;
    this.window = 0;
    // Concealment: a missing frame is replaced by the last one, attenuated, at most
    // twice in a row (beyond, silence); every discontinuity (a concealed frame, a frame
    // after a gap or an underrun, the fall to silence) is bridged by a short linear ramp
    // from the last sample played, so that no gap clicks.
    this.prev = null; // the last frame played (8 kHz)
    this.concealRun = 0;
    this.gain = 1;
    this.last = 0; // the last 8 kHz sample produced
    this.ramp = 0; // samples of the ramp left
    this.rampFrom = 0;
    // Levels for the page's meters, about 20 times a second: the microphone (captured)
    // and what is played (the other side).
    this.outAcc = 0;
    this.outN = 0;
    this.levelEvery = Math.max(1, Math.round((sampleRate * 0.05) / 128));
    this.levelQuanta = 0;
    this.micPeak = 0;
    this.levelAcc = 0;
    this.levelN = 0;
    this.quanta = 0;
    this.statsEvery = Math.max(1, Math.round((sampleRate * 0.5) / 128));
    // probe (for the mouth-to-ear benchmark): the onset of a click after 100 ms of quiet
    // is reported when captured, when its frame arrives and when it is played, each with
    // the context's clock, so that the time at each stage can be told apart.
    this.probe = o.probe === true;
    // record (for tests): the 8 kHz samples played are posted in blocks of 160.
    this.record = o.record === true ? new Float32Array(FRAME) : null;
    this.recN = 0;
    this.quiet = { mic: 0, arrive: 0, out: 0 };
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  // onset reports whether x is the start of a click on path (a sample above 0.25 after
  // 800 quiet ones at 8 kHz) and posts its time.
  onset(path, x, t) {
    if (Math.abs(x) < 0.25) {
      this.quiet[path]++;
      return;
    }
    if (this.quiet[path] >= 800) this.port.postMessage({ type: 'probe', at: path, t });
    this.quiet[path] = 0;
  }

  onMessage(m) {
    if (m.type === 'play') this.enqueue(m.seq, m.pcm);
    else if (m.type === 'reset') {
      this.queue = [];
      this.playing = false;
      this.wait = -1;
      this.cur = null;
      this.lastSeq = -1;
      this.base = -1;
      this.nTransit = 0;
    }
  }

  enqueue(seq, pcm) {
    this.stats.received++;
    if (this.probe) for (const v of pcm) this.onset('arrive', v / 32768, currentTime); // its frame arrives
    // Every arrival counts toward the jitter, the too late ones most of all.
    if (!this.fixed) this.observe(seq, currentTime);
    if (this.lastSeq >= 0 && !seqBefore(this.lastSeq, seq)) {
      this.stats.late++; // already played past it
      return;
    }
    let i = this.queue.length;
    while (i > 0 && seqBefore(seq, this.queue[i - 1].seq)) i--;
    if (i > 0 && this.queue[i - 1].seq === seq) return; // duplicate
    this.queue.splice(i, 0, { seq, pcm });
    while (this.queue.length > this.max) {
      const old = this.queue.shift();
      this.lastSeq = old.seq;
      this.stats.overflow++;
      this.skipped = true; // the next frame played does not follow the last one
    }
  }

  nextSample() {
    if (!this.cur || this.curIdx >= this.cur.length) this.nextFrame();
    let x = this.cur ? (this.cur[this.curIdx++] * this.gain) / 32768 : 0;
    if (this.ramp > 0) {
      const w = this.ramp / RAMP;
      x = x * (1 - w) + this.rampFrom * w;
      this.ramp--;
    }
    this.last = x;
    if (this.record) {
      this.record[this.recN++] = x;
      if (this.recN === FRAME) {
        this.port.postMessage({ type: 'out', pcm: this.record });
        this.record = new Float32Array(FRAME);
        this.recN = 0;
      }
    }
    this.outAcc += x * x;
    this.outN++;
    return x;
  }

  // nextFrame chooses what plays for the next 20 ms: the next frame in order, a
  // concealment of a missing one, or silence.
  nextFrame() {
    const wasPlaying = this.cur !== null;
    if (!this.playing && this.queue.length > 0) {
      // Start once the first frame has waited its share of the target; a second frame
      // already there counts as 20 ms waited.
      if (this.wait < 0) this.wait = Math.max(0, Math.round((this.targetMs - 20 * this.queue.length) * 8));
      if (this.wait === 0 || this.queue.length * 20 >= this.targetMs) {
        this.playing = true;
        this.wait = -1;
      } else this.wait--;
    }
    if (!this.playing || this.queue.length === 0) {
      if (this.playing) this.underrun();
      this.playing = false;
      if (wasPlaying) this.bridge();
      this.cur = null;
      return;
    }
    const next = this.queue[0];
    const gap = this.lastSeq >= 0 ? (next.seq - this.lastSeq - 1) & 0xffff : 0;
    if (gap > 0 && gap < 0x8000 && this.prev && this.concealRun < 2) {
      // A frame is missing: play the last one again, quieter, instead of skipping time.
      this.concealRun++;
      this.stats.concealed++;
      this.stats.lost++;
      this.lastSeq = (this.lastSeq + 1) & 0xffff;
      this.cur = this.prev;
      this.gain = this.concealRun === 1 ? 0.6 : 0.3;
      this.curIdx = 0;
      this.bridge();
      return;
    }
    if (gap > 0 && gap < 0x8000) this.stats.lost += gap;
    let drained = false;
    this.minDepth = Math.min(this.minDepth, this.queue.length);
    if (++this.window >= 50) {
      const extra = this.minDepth - this.target;
      for (let i = 0; i < extra && this.queue.length > 1; i++) {
        this.queue.shift();
        this.stats.drained++;
        drained = true;
      }
      this.minDepth = Infinity;
      this.window = 0;
    }
    const f = this.queue.shift();
    const jump = !wasPlaying || gap > 0 || this.concealRun > 0 || drained || this.skipped;
    this.skipped = false;
    this.concealRun = 0;
    this.lastSeq = f.seq;
    this.cur = f.pcm;
    this.prev = f.pcm;
    this.gain = 1;
    this.curIdx = 0;
    this.stats.played++;
    if (jump) this.bridge();
  }

  // observe notes a frame's transit (its arrival time t minus its place in the stream)
  // and recomputes the target every ADAPT_EVERY frames.
  observe(seq, t) {
    let u;
    if (this.base < 0) {
      this.base = seq;
      u = seq;
    } else {
      // Unwrap relative to the last one seen (a frame is never 32768 frames away).
      u = this.lastUnwrapped + (((seq - (this.lastUnwrapped & 0xffff) + 0x8000) & 0xffff) - 0x8000);
    }
    this.lastUnwrapped = Math.max(this.lastUnwrapped, u);
    this.transits[this.nTransit % ADAPT_WINDOW] = t - (u - this.base) * 0.02;
    if (++this.nTransit % ADAPT_EVERY === 0) this.adapt(t);
  }

  // adapt sets the target from the transits kept: the 95th percentile of the lateness
  // against the earliest frame, plus the margin, and not below the underrun floor.
  adapt(t) {
    const n = Math.min(this.nTransit, ADAPT_WINDOW);
    const v = Array.from(this.transits.subarray(0, n)).sort((a, b) => a - b);
    const late = (v[Math.floor(0.95 * (n - 1))] - v[0]) * 1000;
    this.floorMs = Math.max(0, this.floorMs - FLOOR_FADE_MS * (t - this.floorAt));
    this.floorAt = t;
    this.targetMs = Math.min(ADAPT_MAX_MS, Math.max(ADAPT_MIN_MS, 20 + late + ADAPT_MARGIN_MS, this.floorMs));
    this.target = Math.max(1, Math.round(this.targetMs / 20));
    this.stats.targetMs = Math.round(this.targetMs);
  }

  // underrun counts a frame that was not there in time and, with an adaptive target,
  // raises the floor: the start that follows waits longer.
  underrun() {
    this.stats.underruns++;
    if (this.fixed) return;
    this.floorMs = Math.min(ADAPT_MAX_MS, Math.max(this.floorMs, this.targetMs) + UNDERRUN_STEP_MS);
    this.floorAt = currentTime;
    this.targetMs = Math.max(this.targetMs, this.floorMs);
    this.target = Math.max(1, Math.round(this.targetMs / 20));
    this.stats.targetMs = Math.round(this.targetMs);
  }

  // bridge starts a ramp from the last sample played to what follows.
  bridge() {
    this.rampFrom = this.last;
    this.ramp = RAMP;
  }

  process(inputs, outputs) {
    const inp = inputs[0] && inputs[0][0];
    if (this.capture && inp) this.captureBlock(inp, currentTime);
    const out = outputs[0];
    if (out && out.length) {
      const ch0 = out[0];
      for (let i = 0; i < ch0.length; i++) {
        ch0[i] = this.a + (this.b - this.a) * this.frac;
        this.frac += this.inc;
        while (this.frac >= 1) {
          this.frac -= 1;
          this.a = this.b;
          this.b = this.nextSample();
          if (this.probe) this.onset('out', this.b, currentTime + i / sampleRate);
        }
      }
      for (let c = 1; c < out.length; c++) out[c].set(ch0);
    }
    if (++this.levelQuanta >= this.levelEvery) {
      this.levelQuanta = 0;
      const out = this.outN ? Math.sqrt(this.outAcc / this.outN) : 0;
      this.outAcc = this.outN = 0;
      this.port.postMessage({ type: 'level', mic: this.micPeak, out });
      this.micPeak = 0;
    }
    if (++this.quanta >= this.statsEvery) {
      this.stats.depth = this.queue.length;
      this.quanta = 0;
      this.stats.level = this.levelN ? Math.sqrt(this.levelAcc / this.levelN) : 0;
      this.levelAcc = this.levelN = 0;
      this.port.postMessage({ type: 'stats', ...this.stats });
    }
    return true;
  }

  captureBlock(inp, t0) {
    for (let i = 0; i < inp.length; i++) {
      this.acc += inp[i];
      this.accN++;
      this.pos += 1;
      if (this.pos < this.step) continue;
      this.pos -= this.step;
      const x = this.acc / this.accN; // box filter over the input samples of one output sample
      this.acc = this.accN = 0;
      if (this.probe) this.onset('mic', x, t0 + i / sampleRate);
      this.levelAcc += x * x;
      this.levelN++;
      if (Math.abs(x) > this.micPeak) this.micPeak = Math.abs(x);
      const s = Math.max(-32768, Math.min(32767, Math.round(x * 32767)));
      this.frame[this.fill++] = s;
      if (this.fill === FRAME) {
        this.stats.captured++;
        const pcm = this.frame;
        this.port.postMessage({ type: 'frame', pcm }, [pcm.buffer]);
        this.frame = new Int16Array(FRAME);
        this.fill = 0;
      }
    }
  }
}

registerProcessor('dsm-media', MediaProcessor);
