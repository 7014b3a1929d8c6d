// The page's own call sounds: ringback while the far end rings (when the network sends no
// early media) and a ringtone while a call comes in. Played with an AudioContext of their
// own, quietly, with soft edges; the browser may keep it silent until the first click
// (unlock), as autoplay rules require.

// Cadences: [frequencies Hz, on ms, off ms] bursts, repeated. Ringback as in Europe
// (425 Hz, 1 s on, 4 s off, ETSI TR 101 041); the ringtone a two-tone warble.
const PATTERNS = {
  ringback: { bursts: [[[425], 1000, 4000]], gain: 0.08 },
  ring: { bursts: [[[880, 1175], 400, 200], [[880, 1175], 400, 2000]], gain: 0.1 },
};

/** Tones plays one pattern at a time: play('ringback' | 'ring' | ''). */
export class Tones {
  constructor(opts = {}) {
    this.AC = opts.AudioContext ?? globalThis.AudioContext;
    this.ctx = null;
    this.name = '';
    this.timer = null;
    this.nodes = [];
    this.played = []; // names of the patterns started, oldest first (for tests)
  }

  /** unlock makes (or resumes) the context from a user gesture. */
  unlock() {
    try {
      this.ctx ??= new this.AC();
      this.ctx.resume().catch(() => {});
    } catch {
      // no audio: the page still shows the call
    }
  }

  /** play starts pattern name ('' stops). The same name again keeps it going. */
  play(name) {
    if (name === this.name) return;
    this.stop();
    this.name = name;
    if (!name) return;
    this.played.push(name);
    this.unlock();
    if (!this.ctx) return;
    const p = PATTERNS[name];
    const cycle = p.bursts.reduce((n, [, on, off]) => n + on + off, 0);
    const run = () => {
      let t = this.ctx.currentTime + 0.02;
      for (const [hz, on, off] of p.bursts) {
        this.burst(hz, p.gain, t, on / 1000);
        t += (on + off) / 1000;
      }
    };
    run();
    this.timer = setInterval(run, cycle);
  }

  burst(freqs, level, at, dur) {
    const ctx = this.ctx;
    const gain = ctx.createGain();
    gain.gain.setValueAtTime(0, at);
    gain.gain.linearRampToValueAtTime(level, at + 0.02);
    gain.gain.setValueAtTime(level, at + dur - 0.02);
    gain.gain.linearRampToValueAtTime(0, at + dur);
    gain.connect(ctx.destination);
    for (const hz of freqs) {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(gain);
      o.start(at);
      o.stop(at + dur);
      this.nodes.push(o);
    }
    this.nodes.push(gain);
    if (this.nodes.length > 40) this.nodes.splice(0, this.nodes.length - 40);
  }

  /** stop ends the pattern at once. */
  stop() {
    clearInterval(this.timer);
    this.timer = null;
    this.name = '';
    for (const n of this.nodes) {
      try {
        if (n.stop) n.stop();
        n.disconnect();
      } catch {
        // already stopped
      }
    }
    this.nodes = [];
  }
}
