// The playout of worklet.js driven on a simulated audio clock: frames arrive from a
// simulated network, the processor renders 128-sample quanta at 48 kHz. Checks the
// adaptive target: low on a steady path, higher on a jittery one, and the fixed target
// when one is given.

import { test } from 'node:test';
import assert from 'node:assert/strict';

let Processor = null;
globalThis.sampleRate = 48000;
globalThis.currentTime = 0;
globalThis.AudioWorkletProcessor = class {
  constructor() {
    this.port = { postMessage: () => {}, onmessage: null };
  }
};
globalThis.registerProcessor = (_name, cls) => {
  Processor = cls;
};
await import('../worklet.js');

// simulate runs seconds of a 20 ms stream whose frame i arrives at i*20 ms + delay(i)
// (ms) and returns the processor; it keeps the delay from arrival to playout of every
// frame in p.waits (ms).
function simulate(seconds, delay, opts = {}) {
  globalThis.currentTime = 0;
  const p = new Processor({ processorOptions: { capture: false, ...opts } });
  const quantum = 128 / 48000;
  const n = Math.round(seconds * 50);
  const arrivals = Array.from({ length: n }, (_, i) => ({ i, t: i * 0.02 + delay(i) / 1000 })).sort((a, b) => a.t - b.t);
  const arrived = new Map();
  p.waits = [];
  const out = [[new Float32Array(128)]];
  let next = 0;
  const playedBefore = { n: 0 };
  for (let t = 0; t < seconds + 1; t += quantum) {
    globalThis.currentTime = t;
    if (t <= seconds) {
      // What the end of the stream (an underrun for good) does not count in.
      p.underrunsInStream = p.stats.underruns;
      p.targetInStream = p.targetMs;
    }
    while (next < arrivals.length && arrivals[next].t <= t) {
      const a = arrivals[next++];
      arrived.set(a.i & 0xffff, t);
      p.onMessage({ type: 'play', seq: a.i & 0xffff, pcm: new Int16Array(160).fill(1000) });
    }
    p.process([[]], out);
    if (p.stats.played > playedBefore.n) {
      playedBefore.n = p.stats.played;
      const at = arrived.get(p.lastSeq);
      if (at !== undefined) p.waits.push((t - at) * 1000);
    }
  }
  return p;
}

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

test('worklet: a steady path plays with a short buffer and no underrun', () => {
  const p = simulate(10, (i) => (i * 7919) % 5); // 0-4 ms of jitter
  assert.equal(p.underrunsInStream, 0);
  assert.ok(p.targetInStream <= 40, `target ${p.targetInStream} ms`);
  assert.ok(median(p.waits) < 25, `median wait ${median(p.waits)} ms`);
});

test('worklet: a jittery path raises the target', () => {
  const p = simulate(10, (i) => ((i * 7919) % 10 === 0 ? 60 : (i * 31) % 8)); // every tenth frame 60 ms late
  assert.ok(p.targetInStream >= 80, `target ${p.targetInStream} ms`);
  // After the target adapted (2.5 s), late frames are played in time.
  const early = simulate(3, (i) => ((i * 7919) % 10 === 0 ? 60 : (i * 31) % 8));
  assert.ok(p.underrunsInStream <= early.underrunsInStream + 2, `underruns ${p.underrunsInStream} in 10 s, ${early.underrunsInStream} in 3 s`);
});

test('worklet: jitterFrames fixes the target', () => {
  const p = simulate(5, (i) => ((i * 7919) % 10 === 0 ? 60 : 0), { jitterFrames: 3 });
  assert.equal(p.targetMs, 60);
  const q = simulate(5, () => 0, { jitterFrames: 3 });
  assert.ok(median(q.waits) >= 35, `median wait ${median(q.waits)} ms with 60 ms fixed`);
});
