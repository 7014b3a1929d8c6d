// Unit tests of transform.js: the TP1 convergence property on random ops (as
// store.FuzzTransformTP1 checks it in Go), composition and local expect checks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from './rng.js';
import { apply, check, compose, transformClient, transformServer, validate } from '../transform.js';

function randomOp(r, n) {
  const ops = [];
  for (let i = 0; i < n; i++) {
    const f = 'abcd'[Math.floor(r() * 4)];
    const v = String(Math.floor(r() * 3));
    const k = Math.floor(r() * 3);
    ops.push(k === 0 ? { o: 'set', f, v } : k === 1 ? { o: 'del', f } : { o: 'expect', f, v });
  }
  return ops;
}

const state = (m) => Object.fromEntries([...m].sort());

test('TP1: X·s·T(c,s) equals X·c·T(s,c), with and without a buffer', () => {
  const seed = Number(process.env.DSM_SEED || Date.now() % 1e9);
  const r = rng(seed);
  for (let i = 0; i < 5000; i++) {
    const x = new Map();
    for (let j = 0; j < 4; j++) if (r() < 0.5) x.set('abcd'[j], String(Math.floor(r() * 3)));
    const s = randomOp(r, 1 + Math.floor(r() * 5));
    const c1 = randomOp(r, 1 + Math.floor(r() * 4));
    const c2 = randomOp(r, Math.floor(r() * 4));
    const left = apply(apply(apply(new Map(x), s), transformClient(c1, s)), c2);
    const right = apply(apply(apply(new Map(x), c1), c2), transformServer(s, c1, c2));
    assert.deepEqual(state(left), state(right), `seed ${seed} case ${i}: ${JSON.stringify({ x: state(x), s, c1, c2 })}`);
  }
});

test('transformServer drops touched fields and expects, and returns null when empty', () => {
  const s = [
    { o: 'expect', f: 'st', v: 'a' },
    { o: 'set', f: 'st', v: 'b' },
    { o: 'set', f: 'x', v: '1' },
    { o: 'del', f: 'y' },
  ];
  const c = [{ o: 'expect', f: 'x', v: '0' }, { o: 'del', f: 'st' }];
  assert.deepEqual(transformServer(s, c), [{ o: 'set', f: 'x', v: '1' }, { o: 'del', f: 'y' }]);
  assert.equal(transformServer([{ o: 'set', f: 'a', v: '1' }], [{ o: 'del', f: 'a' }]), null);
  assert.deepEqual(transformServer([{ o: 'set', f: 'a', v: '1' }], null, undefined), [{ o: 'set', f: 'a', v: '1' }]);
});

test('compose keeps the last write per field', () => {
  const a = [{ o: 'set', f: 'a', v: '1' }, { o: 'set', f: 'b', v: '1' }];
  const b = [{ o: 'del', f: 'a' }, { o: 'set', f: 'c', v: '2' }];
  const c = compose(a, b);
  assert.deepEqual(c, [{ o: 'del', f: 'a' }, { o: 'set', f: 'b', v: '1' }, { o: 'set', f: 'c', v: '2' }]);
  const x = new Map([['a', '0']]);
  assert.deepEqual(state(apply(new Map(x), c)), state(apply(apply(new Map(x), a), b)));
});

test('check evaluates expects in order, seeing earlier writes of the same op', () => {
  const f = new Map([['st', 'ringing']]);
  assert.equal(check(f, [{ o: 'expect', f: 'st', v: 'ringing' }, { o: 'set', f: 'st', v: 'connecting' }]), null);
  assert.deepEqual(check(f, [{ o: 'expect', f: 'st', v: 'connected' }]), { field: 'st', want: 'connected', have: 'ringing' });
  assert.equal(check(f, [{ o: 'set', f: 'x', v: '1' }, { o: 'expect', f: 'x', v: '1' }]), null);
  assert.equal(check(f, [{ o: 'expect', f: 'x' }]), null);
  assert.notEqual(check(f, [{ o: 'expect', f: 'st' }]), null);
  assert.equal(check(f, [{ o: 'del', f: 'st' }, { o: 'expect', f: 'st' }]), null);
});

test('validate refuses malformed ops', () => {
  assert.match(validate([]), /empty/);
  assert.match(validate([{ o: 'put', f: 'a' }]), /unknown kind/);
  assert.match(validate([{ o: 'set', f: '' , v: '1'}]), /empty field/);
  assert.match(validate([{ o: 'set', f: 'a' }]), /without a string/);
  assert.match(validate([{ o: 'set', f: 'a', v: 'x'.repeat(5000) }]), /value_too_long/);
  assert.match(validate(Array.from({ length: 33 }, () => ({ o: 'del', f: 'a' }))), /too_many_ops/);
  assert.equal(validate([{ o: 'set', f: 'a', v: '1' }]), null);
});
