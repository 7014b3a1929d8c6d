// Unit tests of the Jupiter client state machine (object.js, dsm.js) with a scripted socket:
// the test plays the server's part message by message, so every transition is checked
// without a gateway. The tests against a running gateway are in gateway.test.js.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DSM, AWAITING_CONFIRM, AWAITING_WITH_BUFFER, SYNCHRONIZED } from '../dsm.js';

// ScriptedSocket records what the client sends; the test delivers server messages.
class ScriptedSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closed = false;
    ScriptedSocket.all.push(this);
    queueMicrotask(() => this.onopen && this.onopen({}));
  }
  send(s) {
    this.sent.push(JSON.parse(s));
  }
  close() {
    this.closed = true;
  }
  deliver(m) {
    this.onmessage({ data: JSON.stringify(m) });
  }
  take() {
    return this.sent.splice(0);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 5));

async function connected() {
  ScriptedSocket.all = [];
  const dsm = new DSM({
    base: 'http://gw.test/',
    WebSocket: ScriptedSocket,
    session: async () => ({ client: 'K', token: 'T', expires: Date.now() / 1000 + 3600 }),
    backoffMin: 1,
    backoffMax: 2,
    log: () => {},
  });
  const ready = dsm.start();
  await tick();
  const ws = ScriptedSocket.all[0];
  const [hello] = ws.take();
  assert.deepEqual(hello, { t: 'hello', token: 'T', epoch: dsm.epoch });
  assert.match(dsm.epoch, /^[A-Za-z0-9_-]{16}$/);
  assert.equal(ws.url, 'ws://gw.test/dsm');
  ws.deliver({ t: 'welcome', client: 'K', user: '', instance: 'i1', limits: { max_ops: 32 } });
  await ready;
  return { dsm, ws };
}

async function subscribed(addr, fields = {}, rev = 1) {
  const c = await connected();
  const o = c.dsm.object(addr);
  assert.deepEqual(c.ws.take(), [{ t: 'sub', obj: addr, id: 'sub:' + addr }]);
  c.ws.deliver({ t: 'snap', obj: addr, rev, fields });
  await o.ready;
  return { ...c, o };
}

test('local write applies at once, buffers while in flight, and acks in order', async () => {
  const { dsm, ws, o } = await subscribed('players/K/audio', { a: '0' }, 3);
  const events = [];
  o.on((e) => events.push([e.cause, e.changes]));
  const states = [];
  o.onState((s) => states.push(s));
  const p1 = o.set({ a: '1' });
  assert.equal(o.get('a'), '1');
  assert.equal(o.state, AWAITING_CONFIRM);
  const p2 = o.set({ b: '2' });
  const p3 = o.del('a');
  assert.equal(o.state, AWAITING_WITH_BUFFER);
  assert.deepEqual(o.fields(), { b: '2' });
  const sent = ws.take();
  assert.deepEqual(sent, [{ t: 'op', obj: o.addr, seq: 1, base: 3, ops: [{ o: 'set', f: 'a', v: '1' }], id: 'op:1:players/K/audio' }]);
  ws.deliver({ t: 'ack', obj: o.addr, seq: 1, rev: 4 });
  assert.equal(await p1, 4);
  // The buffer (two unconditional writes) went out as one op.
  const [m2] = ws.take();
  assert.equal(m2.seq, 2);
  assert.equal(m2.base, 4);
  assert.deepEqual(m2.ops, [{ o: 'set', f: 'b', v: '2' }, { o: 'del', f: 'a' }]);
  ws.deliver({ t: 'ack', obj: o.addr, seq: 2, rev: 5 });
  assert.equal(await p2, 5);
  assert.equal(await p3, 5);
  assert.equal(o.state, SYNCHRONIZED);
  assert.deepEqual(o.serverFields(), { b: '2' });
  assert.deepEqual(states, [AWAITING_CONFIRM, AWAITING_WITH_BUFFER, AWAITING_CONFIRM, SYNCHRONIZED]);
  assert.deepEqual(events.map((e) => e[0]), ['local', 'local', 'local']);
  assert.deepEqual(events[2][1], [{ field: 'a', old: '1', new: undefined }]);
  dsm.close();
});

test('a concurrent remote op is transformed: the local pending write wins its field', async () => {
  const { dsm, ws, o } = await subscribed('o', { a: '0', b: '0' }, 1);
  const fieldEvents = [];
  o.onField('b', (e) => fieldEvents.push(e));
  o.onField('a', (e) => fieldEvents.push(e));
  o.set({ a: 'mine' });
  ws.take();
  ws.deliver({ t: 'op', obj: 'o', rev: 2, ops: [{ o: 'set', f: 'a', v: 'theirs' }, { o: 'set', f: 'b', v: 'x' }] });
  assert.deepEqual(o.fields(), { a: 'mine', b: 'x' });
  assert.deepEqual(o.serverFields(), { a: 'theirs', b: 'x' });
  ws.deliver({ t: 'ack', obj: 'o', seq: 1, rev: 3 });
  assert.deepEqual(o.serverFields(), { a: 'mine', b: 'x' });
  assert.deepEqual(
    fieldEvents.map((e) => [e.field, e.old, e.new, e.cause]),
    [['a', '0', 'mine', 'local'], ['b', '0', 'x', 'remote']],
  );
  // Duplicate or old remote ops are ignored.
  ws.deliver({ t: 'op', obj: 'o', rev: 3, ops: [{ o: 'set', f: 'a', v: 'old' }] });
  assert.equal(o.get('a'), 'mine');
  dsm.close();
});

test('nack rolls back exactly and then sends the buffer', async () => {
  const { dsm, ws, o } = await subscribed('o', { st: 'ringing' }, 7);
  const seen = [];
  o.onField('st', (e) => seen.push([e.old, e.new, e.cause]));
  const p1 = o.set({ st: 'connecting' }, { st: 'ringing' });
  const p2 = o.set({ x: '1' });
  ws.take();
  ws.deliver({ t: 'op', obj: 'o', rev: 8, ops: [{ o: 'set', f: 'st', v: 'disconnected' }] });
  assert.equal(o.get('st'), 'connecting'); // the pending write still wins locally
  ws.deliver({ t: 'nack', obj: 'o', seq: 1, code: 'expect_failed', msg: 'st is disconnected' });
  await assert.rejects(p1, (e) => e.code === 'expect_failed');
  assert.deepEqual(o.fields(), { st: 'disconnected', x: '1' });
  assert.deepEqual(seen, [['ringing', 'connecting', 'local'], ['connecting', 'disconnected', 'rollback']]);
  const [m] = ws.take();
  assert.equal(m.seq, 2);
  assert.equal(m.base, 8);
  ws.deliver({ t: 'ack', obj: 'o', seq: 2, rev: 9 });
  assert.equal(await p2, 9);
  dsm.close();
});

test('an expect that fails on the view is refused locally and sends nothing', async () => {
  const { dsm, ws, o } = await subscribed('o', { st: 'connected' }, 1);
  await assert.rejects(o.set({ st: 'connecting' }, { st: 'ringing' }), (e) => e.code === 'expect_failed');
  assert.deepEqual(ws.take(), []);
  assert.equal(o.get('st'), 'connected');
  await assert.rejects(o.write([]), (e) => e.code === 'bad_op');
  dsm.close();
});

test('reconnect: re-subscribe with since, resend the in-flight op with the same seq', async () => {
  const { dsm, ws, o } = await subscribed('o', {}, 5);
  const p = o.set({ a: '1' });
  const [first] = ws.take();
  dsm.drop();
  await tick();
  const ws2 = ScriptedSocket.all[1];
  assert.deepEqual(ws2.take(), [{ t: 'hello', token: 'T', epoch: dsm.epoch }]);
  ws2.deliver({ t: 'welcome', client: 'K', instance: 'i2', limits: {} });
  assert.deepEqual(ws2.take(), [{ t: 'sub', obj: 'o', since: 5, id: 'sub:o' }]);
  // Someone else wrote meanwhile; our op was not committed before the drop.
  ws2.deliver({ t: 'catchup', obj: 'o', rev: 6, log: [{ rev: 6, ops: [{ o: 'set', f: 'b', v: '2' }] }] });
  const [again] = ws2.take();
  assert.equal(again.seq, first.seq);
  assert.deepEqual(again.ops, first.ops);
  assert.equal(again.base, 6);
  ws2.deliver({ t: 'ack', obj: 'o', seq: first.seq, rev: 7 });
  assert.equal(await p, 7);
  assert.deepEqual(o.serverFields(), { a: '1', b: '2' });
  dsm.close();
});

test('reconnect: a catchup entry with our seq is the ack; nothing is resent', async () => {
  const { dsm, ws, o } = await subscribed('o', {}, 5);
  const p = o.set({ a: '1' });
  o.set({ c: '3' });
  ws.take();
  dsm.drop();
  await tick();
  const ws2 = ScriptedSocket.all[1];
  ws2.take();
  ws2.deliver({ t: 'welcome', client: 'K', limits: {} });
  ws2.take();
  ws2.deliver({
    t: 'catchup', obj: 'o', rev: 7,
    log: [{ rev: 6, ops: [{ o: 'set', f: 'a', v: '1' }], seq: 1 }, { rev: 7, ops: [{ o: 'set', f: 'a', v: 'later' }] }],
  });
  assert.equal(await p, 6);
  assert.equal(o.get('a'), 'later');
  const sent = ws2.take();
  assert.equal(sent.length, 1);
  assert.equal(sent[0].seq, 2); // the buffer, not a resend of seq 1
  assert.deepEqual(sent[0].ops, [{ o: 'set', f: 'c', v: '3' }]);
  dsm.close();
});

test('reconnect with a snapshot: the duplicate ack of the resend does not apply twice', async () => {
  const { dsm, ws, o } = await subscribed('o', {}, 5);
  const p = o.set({ a: '1' });
  ws.take();
  dsm.drop();
  await tick();
  const ws2 = ScriptedSocket.all[1];
  ws2.take();
  ws2.deliver({ t: 'welcome', client: 'K', limits: {} });
  ws2.take();
  // The op log no longer reaches rev 5: a snapshot that includes our op (rev 6) and a later one.
  ws2.deliver({ t: 'snap', obj: 'o', rev: 9, fields: { a: 'other' } });
  const [again] = ws2.take();
  assert.equal(again.seq, 1);
  assert.equal(o.get('a'), '1'); // still pending locally
  ws2.deliver({ t: 'ack', obj: 'o', seq: 1, rev: 6 });
  assert.equal(await p, 6);
  assert.equal(o.get('a'), 'other');
  assert.equal(o.rev, 9);
  dsm.close();
});

test('blind writes resolve on ack and are resent after a reconnect', async () => {
  const { dsm, ws } = await connected();
  const p = dsm.write('players', [{ o: 'set', f: 'players/K/audio', v: 'audio' }]);
  const [m] = ws.take();
  assert.equal(m.base, undefined);
  assert.equal(m.seq, 1);
  dsm.drop();
  await tick();
  const ws2 = ScriptedSocket.all[1];
  ws2.take();
  ws2.deliver({ t: 'welcome', client: 'K', limits: {} });
  const [again] = ws2.take();
  assert.deepEqual(again, m);
  ws2.deliver({ t: 'ack', obj: 'players', seq: 1, rev: 12 });
  assert.equal(await p, 12);
  dsm.close();
});

test('errors: rate_limited resends the same op; forbidden rolls back; sub errors reject ready', async () => {
  const { dsm, ws, o } = await subscribed('o', {}, 1);
  const p = o.set({ a: '1' });
  const [m] = ws.take();
  ws.deliver({ t: 'error', code: 'rate_limited', msg: 'slow down', id: m.id, obj: 'o' });
  await new Promise((r) => setTimeout(r, 300));
  const [again] = ws.take();
  assert.deepEqual(again, m);
  ws.deliver({ t: 'error', code: 'forbidden', msg: 'no', id: m.id, obj: 'o' });
  await assert.rejects(p, (e) => e.code === 'forbidden');
  assert.equal(o.get('a'), undefined);
  const x = dsm.object('users/bob');
  const errs = [];
  x.onError((e) => errs.push(e.code));
  ws.take();
  ws.deliver({ t: 'error', code: 'forbidden', msg: 'not granted', id: 'sub:users/bob', obj: 'users/bob' });
  await assert.rejects(x.ready, (e) => e.code === 'forbidden');
  assert.deepEqual(errs, ['forbidden']);
  dsm.close();
});

test('resync replaces the server state and listeners see the difference', async () => {
  const { dsm, ws, o } = await subscribed('o', { a: '1', b: '1' }, 1);
  const ev = [];
  o.on((e) => ev.push(e));
  o.set({ c: 'mine' });
  ws.deliver({ t: 'resync', obj: 'o', rev: 4, fields: { a: '2', c: 'x' } });
  assert.deepEqual(o.fields(), { a: '2', c: 'mine' });
  assert.equal(ev[1].cause, 'resync');
  assert.deepEqual(ev[1].changes, [{ field: 'a', old: '1', new: '2' }, { field: 'b', old: '1', new: undefined }]);
  dsm.close();
});

test('session: a token refused (4001) and not renewable ends the client with bad_token', async () => {
  ScriptedSocket.all = [];
  const calls = [];
  const fetchStub = async (url) => {
    calls.push(url.search);
    if (url.searchParams.has('refresh')) return { ok: false, status: 401, text: async () => 'expired' };
    return { ok: true, json: async () => ({ client: 'K', token: 'T1', expires: Date.now() / 1000 + 3600 }) };
  };
  const dsm = new DSM({ base: 'http://gw.test/', WebSocket: ScriptedSocket, fetch: fetchStub, user: 'al', backoffMin: 1, backoffMax: 2, log: () => {} });
  const errors = [];
  dsm.onError((e) => errors.push(e.code));
  const ready = dsm.start();
  await tick();
  const ws = ScriptedSocket.all[0];
  assert.deepEqual(ws.take(), [{ t: 'hello', token: 'T1', epoch: dsm.epoch }]);
  ws.deliver({ t: 'welcome', client: 'K', user: 'al', limits: {} });
  await ready;
  assert.deepEqual(calls, ['?user=al']);
  ws.onclose({ code: 4001, reason: 'bad token' });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(errors, ['bad_token']);
  assert.equal(dsm.state, 'closed');
  assert.equal(calls[1], '?user=al&refresh=T1');
  assert.equal(ScriptedSocket.all.length, 1, 'no reconnect with a lost session');
});

test('a listener that throws is logged and the others still run; set() sends protocol elements', async () => {
  const { dsm, ws, o } = await subscribed('o', { a: '0', b: '0' }, 1);
  const logs = [];
  dsm.logFn = (level, msg) => logs.push([level, msg]);
  const seen = [];
  o.on(() => {
    throw new Error('boom');
  });
  o.on((e) => seen.push(e.cause));
  o.set({ a: 1, b: null }, { a: '0', c: null });
  assert.deepEqual(seen, ['local']);
  assert.equal(logs.length, 1);
  assert.equal(logs[0][0], 'error');
  assert.match(logs[0][1], /^dsm: listener failed: Error: boom/);
  const [m] = ws.take();
  assert.deepEqual(m.ops, [{ o: 'expect', f: 'a', v: '0' }, { o: 'expect', f: 'c' }, { o: 'set', f: 'a', v: '1' }, { o: 'del', f: 'b' }]);
  dsm.close();
});

test('a reloaded page reusing its token: seq_reused renumbers the op after the last seq and sends it as new', async () => {
  const { dsm, ws, o } = await subscribed('players/K/audio', { a: 'old' }, 7);
  const p = o.set({ a: 'new' });
  const [m] = ws.take();
  assert.equal(m.seq, 1);
  ws.deliver({ t: 'nack', obj: o.addr, seq: 1, code: 'seq_reused', msg: 'taken', last: 41 });
  const [again] = ws.take();
  assert.equal(again.seq, 42);
  assert.deepEqual(again.ops, m.ops);
  assert.equal(o.get('a'), 'new'); // never rolled back
  ws.deliver({ t: 'ack', obj: o.addr, seq: 42, rev: 8 });
  assert.equal(await p, 8);
  assert.deepEqual(o.serverFields(), { a: 'new' });
  o.set({ b: '1' });
  assert.equal(ws.take()[0].seq, 43);
  dsm.close();
});

test('strings JSON cannot carry are refused locally: lone surrogates in names and values', async () => {
  const { dsm, ws, o } = await subscribed('players/K/audio', {}, 1);
  const cut = 'Bj\u{1F600}'.slice(0, 3); // an emoji cut in half: "Bj\uD83D"
  for (const ops of [
    [{ o: 'set', f: 'remote', v: cut }],
    [{ o: 'set', f: '\uDC00', v: 'x' }],
    [{ o: 'expect', f: 'a', v: '\uDE00\uD83D' }, { o: 'set', f: 'a', v: 'b' }],
  ]) {
    await assert.rejects(o.write(ops), (e) => e.code === 'bad_op' && /surrogate/.test(e.message));
  }
  await assert.rejects(dsm.write('players', [{ o: 'set', f: 'players/K/audio', v: '\uD800' }]), (e) => e.code === 'bad_op');
  assert.deepEqual(ws.take(), []);
  assert.deepEqual(o.fields(), {});
  // Whole characters of every width pass, NUL included.
  o.set({ emoji: 'Bj\u{1F600}rk', combining: 'e\u0301', nul: 'a\u0000b', four: '\u{10348}' });
  assert.equal(ws.take().length, 1);
  dsm.close();
});

test('a subscription refused with unavailable is asked again after 500 ms; ready waits for the snapshot', async () => {
  const { dsm, ws } = await connected();
  const o = dsm.object('o');
  assert.deepEqual(ws.take(), [{ t: 'sub', obj: 'o', id: 'sub:o' }]);
  let settled = false;
  o.ready.then(() => (settled = true), () => (settled = true));
  ws.deliver({ t: 'error', code: 'unavailable', msg: 'redis did not answer', id: 'sub:o', obj: 'o' });
  await tick();
  assert.deepEqual(ws.take(), [], 'asked again at once');
  assert.equal(settled, false, 'ready settled by a transient refusal');
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(ws.take(), [{ t: 'sub', obj: 'o', id: 'sub:o' }]);
  ws.deliver({ t: 'snap', obj: 'o', rev: 1, fields: { a: '1' } });
  await o.ready;
  assert.equal(o.get('a'), '1');
  dsm.close();
});
