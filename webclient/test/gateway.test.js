// dsm.js against a running gateway (two bridge instances on one Redis, started by the Go
// test TestNodeClient): session and welcome, local writes and acks, remote ops from a Go
// service, server nacks with rollback, refusals, blind writes, outside writes as resyncs,
// reconnect resume without double-apply, token renewal, and the convergence of several
// clients racing on shared objects with forced disconnects.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadSchema } from '../schema.js';
import { rng } from './rng.js';
import { GW, GW2, GW_SHORT_TTL, client, client as client_, goCommit, goRead, needGateway, outsideWrite, settled, sleep, until } from './gateway.js';

const SEED = Number(process.env.DSM_SEED || Date.now() % 1e9);

test('connects: session, welcome, schema served by the gateway', async () => {
  needGateway();
  const dsm = await client();
  assert.match(dsm.client, /^[A-Za-z0-9]{16,}$/);
  assert.equal(dsm.instance, 'gw1');
  assert.ok(dsm.limits.max_ops >= 1);
  const schema = await loadSchema(GW);
  assert.equal(schema.P.playerState, 'player_state');
  assert.equal(schema.playerAddress(dsm.client), `players/${dsm.client}/audio`);
  dsm.close();
});

test('own player object: local write is acked and in Redis; a Go write arrives as a remote op', async () => {
  const dsm = await client();
  const addr = `players/${dsm.client}/audio`;
  const p = dsm.object(addr);
  await p.ready;
  const seen = [];
  p.onField('mgw_state', (e) => seen.push([e.old, e.new, e.cause]));
  const local = [];
  p.onField('player_state', (e) => local.push([e.old, e.new, e.cause]));
  const rev = await p.set({ player_state: 'connecting', remote: 'sip:bob@example.com' });
  assert.deepEqual(local, [[undefined, 'connecting', 'local']]);
  const r = await goRead(addr);
  assert.equal(r.rev, rev);
  assert.deepEqual(r.fields, { player_state: 'connecting', remote: 'sip:bob@example.com' });
  const goRev = await goCommit(addr, [{ o: 'set', f: 'mgw_state', v: 'connecting' }]);
  await until(() => p.rev === goRev, 'the Go commit');
  assert.deepEqual(seen, [[undefined, 'connecting', 'remote']]);
  assert.equal(p.state, 'synchronized');
  dsm.close();
});

test('a write from another instance reaches a subscriber in revision order', async () => {
  const a = await client({ base: GW });
  const b = await client({ base: GW2 });
  assert.equal(b.instance, 'gw2');
  const obj = `shared/order/${SEED}`;
  const oa = a.object(obj);
  await oa.ready;
  const revs = [];
  oa.on((e) => e.cause === 'remote' && revs.push(e.rev));
  const ob = b.object(obj);
  await ob.ready;
  for (let i = 0; i < 20; i++) ob.set({ n: String(i) });
  await until(() => oa.get('n') === '19' && oa.rev === ob.rev && settled(b), 'the ops of the other instance');
  for (let i = 1; i < revs.length; i++) assert.ok(revs[i] > revs[i - 1], `revisions in order: ${revs}`);
  a.close();
  b.close();
});

test('nack: an expect that fails on the server rolls the view back', async () => {
  const dsm = await client();
  const addr = `players/${dsm.client}/audio`;
  const p = dsm.object(addr);
  await p.ready;
  await goCommit(addr, [{ o: 'set', f: 'player_state', v: 'ringing' }]);
  await until(() => p.get('player_state') === 'ringing', 'ringing');
  const seen = [];
  p.onField('player_state', (e) => seen.push([e.old, e.new, e.cause]));
  // Offline, answer the call (the view says ringing) while the far end hangs up meanwhile.
  dsm.close();
  const answer = p.set({ player_state: 'connecting' }, { player_state: 'ringing' });
  assert.equal(p.get('player_state'), 'connecting');
  await goCommit(addr, [{ o: 'set', f: 'player_state', v: 'disconnected' }]);
  await dsm.start();
  await assert.rejects(answer, (e) => e.code === 'expect_failed');
  assert.equal(p.get('player_state'), 'disconnected');
  assert.deepEqual(seen, [['ringing', 'connecting', 'local'], ['connecting', 'disconnected', 'rollback']]);
  assert.deepEqual(p.fields(), (await goRead(addr)).fields);
  dsm.close();
});

test('refusals: another client\'s objects are forbidden, the connection stays usable', async () => {
  const a = await client();
  const b = await client();
  const other = `players/${b.client}/audio`;
  await assert.rejects(a.write(other, [{ o: 'set', f: 'x', v: '1' }]), (e) => e.code === 'forbidden');
  await assert.rejects(a.write('players', [{ o: 'set', f: other, v: 'audio' }]), (e) => e.code === 'forbidden');
  const errs = [];
  const spy = a.object(other);
  spy.onError((e) => errs.push(e.code));
  await assert.rejects(spy.ready, (e) => e.code === 'forbidden');
  assert.deepEqual(errs, ['forbidden']);
  const own = a.object(`players/${a.client}/audio`);
  await own.ready;
  assert.ok((await own.set({ service: 'mmtel' })) > 0);
  assert.equal((await goRead(other)).rev, 0);
  a.close();
  b.close();
});

test('blind write: the own entry of the players index', async () => {
  const dsm = await client();
  const addr = `players/${dsm.client}/audio`;
  const rev = await dsm.write('players', [{ o: 'set', f: addr, v: 'audio' }]);
  assert.ok(rev > 0);
  assert.equal((await goRead('players')).fields[addr], 'audio');
  dsm.close();
});

test('a write outside the commit path reaches the subscriber as a resync', async () => {
  const dsm = await client();
  const addr = `players/${dsm.client}/audio`;
  const p = dsm.object(addr);
  await p.ready;
  await p.set({ player_state: 'connecting' });
  const ev = [];
  p.on((e) => ev.push(e));
  await outsideWrite(addr, 'progress', '180 Ringing');
  await until(() => p.get('progress') === '180 Ringing', 'the adopted outside write');
  const last = ev[ev.length - 1];
  assert.equal(last.cause, 'resync');
  assert.deepEqual(last.changes, [{ field: 'progress', old: undefined, new: '180 Ringing' }]);
  assert.equal(p.rev, (await goRead(addr)).rev);
  dsm.close();
});

test('reconnect resume: an op cut off by a dropped connection is applied exactly once', async () => {
  const dsm = await client();
  const addr = `players/${dsm.client}/audio`;
  const p = dsm.object(addr);
  await p.ready;
  const revs = [];
  for (let i = 0; i < 25; i++) {
    const w = p.set({ n: String(i) });
    if (i % 5 === 4) await sleep(1); // let some ops reach the server before the drop
    dsm.drop();
    revs.push(await w);
    await until(() => settled(dsm), 'resumed');
  }
  const log = (await goRead(addr, 0)).log;
  const mine = log.filter((e) => e.c === dsm.client);
  assert.deepEqual(mine.map((e) => e.rev), revs, 'one commit per write, at the acked revision');
  assert.equal(new Set(mine.map((e) => e.q)).size, mine.length, 'no seq committed twice');
  assert.equal(p.get('n'), '24');
  assert.deepEqual(p.fields(), (await goRead(addr)).fields);
  dsm.close();
});

test('session: the token is renewed before it expires and reconnects use the new one', async () => {
  const ttl = Number(process.env.DSM_TOKEN_TTL || 0);
  assert.ok(ttl > 0 && ttl <= 10 && GW_SHORT_TTL, 'TestNodeClient sets a short DSM_TOKEN_TTL and its instance');
  const dsm = await client({ base: GW_SHORT_TTL });
  const first = dsm.session.current;
  await until(() => dsm.session.current.token !== first.token, 'a renewed token', (ttl + 5) * 1000);
  assert.equal(dsm.session.current.client, first.client);
  await until(() => Date.now() / 1000 > first.expires + 0.5, 'the first token to expire', (ttl + 5) * 1000);
  dsm.drop();
  await until(() => settled(dsm), 'a reconnect with the renewed token');
  const p = dsm.object(`players/${dsm.client}/audio`);
  await p.ready;
  assert.ok((await p.set({ service: 'poc' })) > 0);
  dsm.close();
});

// Values at the edges of Unicode: surrogate pairs, combining marks, NUL, 4-byte UTF-8,
// right-to-left text, escapes JSON must keep.
const UNI = ['😀', 'e\u0301', 'a\u0000b', '\u{10348}', 'שלום', '"\\\n', '\u{1F469}\u200D\u{1F4BB}', ''];

test(`convergence: clients on two instances race on shared objects with drops and reloads (seed ${SEED})`, async () => {
  const r = rng(SEED);
  const N = 8;
  const OBJS = [0, 1, 2].map((i) => `shared/conv/${SEED}/${i}`);
  const FIELDS = ['a', 'b', 'c', '\u00e9', '😀'];
  const clients = [];
  const sessions = [];
  for (let i = 0; i < N; i++) {
    const c = await client({ base: i % 2 ? GW2 : GW });
    clients.push(c);
    sessions.push(c.session.current);
  }
  const objs = clients.map((c) => OBJS.map((a) => c.object(a)));
  await Promise.all(objs.flat().map((o) => o.ready));
  // Acknowledged revisions per client key: a reloaded page is the same key again.
  const acked = clients.map(() => OBJS.map(() => new Set()));
  const pending = [];
  const unexpected = [];
  let reloads = 0;
  const work = clients.map(async (c0, ci) => {
    let c = c0;
    for (let n = 0; n < 200; n++) {
      if (r() < 0.01) {
        // The page reloads with its token (kept in sessionStorage, say): once its writes
        // are answered it goes, and a new page with the same client key numbers from 1.
        await until(() => settled(c), 'settled before the reload');
        c.close();
        const s = sessions[ci];
        c = await client({ base: ci % 2 ? GW2 : GW, session: async () => s });
        clients[ci] = c;
        objs[ci] = OBJS.map((a) => c.object(a));
        await Promise.all(objs[ci].map((o) => o.ready));
        reloads++;
      }
      const oi = Math.floor(r() * OBJS.length);
      const o = objs[ci][oi];
      const f = FIELDS[Math.floor(r() * FIELDS.length)];
      const k = r();
      let w;
      if (k < 0.5) w = o.set({ [f]: `${ci}.${n}${UNI[Math.floor(r() * UNI.length)]}` });
      else if (k < 0.7) w = o.del(f);
      else {
        // A conditional write on what this replica sees now: it may fail on the server.
        const g = FIELDS[Math.floor(r() * FIELDS.length)];
        w = o.set({ [g]: `${ci}.${n}?` }, { [f]: o.get(f) ?? null });
      }
      pending.push(
        w.then(
          (rev) => acked[ci][oi].add(rev),
          (e) => e.code !== 'expect_failed' && unexpected.push(e),
        ),
      );
      if (r() < 0.03) c.drop();
      if (r() < 0.3) await sleep(Math.floor(r() * 4));
    }
  });
  await Promise.all(work);
  await Promise.all(pending);
  assert.deepEqual(unexpected, []);
  console.log(`# ${reloads} reloads`);
  await until(() => clients.every(settled), 'every client settled', 30000);
  for (const [oi, addr] of OBJS.entries()) {
    const want = await goRead(addr);
    await until(() => objs.every((os) => os[oi].rev === want.rev), `every replica of ${addr} at rev ${want.rev}`);
    for (const [ci, os] of objs.entries()) {
      assert.deepEqual(os[oi].fields(), want.fields, `client ${ci} on ${addr} (seed ${SEED})`);
      assert.deepEqual(os[oi].serverFields(), want.fields);
    }
    // Every acknowledged op is in the op log exactly once, at its acked revision, and
    // nothing else of that client is.
    const log = (await goRead(addr, 0)).log;
    assert.equal(log.length, want.rev, 'the op log reaches back to the start');
    for (const [ci, c] of clients.entries()) {
      assert.equal(c.client, sessions[ci].client);
      const mine = log.filter((e) => e.c === c.client).map((e) => e.rev).sort((x, y) => x - y);
      const got = [...acked[ci][oi]].sort((x, y) => x - y);
      assert.deepEqual(mine, got, `client ${ci} on ${addr}: committed revisions = acknowledged revisions`);
    }
  }
  for (const c of clients) c.close();
});

test('a page that reloads and reuses its token keeps its writes (index entry and player)', async () => {
  const first = await client();
  const s = first.session.current;
  const addr = `players/${first.client}/audio`;
  const p1 = first.object(addr);
  await p1.ready;
  await first.write('players', [{ o: 'set', f: addr, v: 'audio' }]);
  await p1.set({ player_state: 'connecting', remote: 'sip:old@example.com' });
  await goCommit('players', [{ o: 'del', f: addr }]); // the index entry went meanwhile
  first.close();
  for (const remote of ['sip:new@example.com', 'sip:newer@example.com']) {
    const page = await client({ session: async () => s });
    assert.equal(page.client, s.client);
    const p = page.object(addr);
    await p.ready;
    const rev = await p.set({ remote });
    await page.write('players', [{ o: 'set', f: addr, v: 'audio' }]);
    const r = await goRead(addr);
    assert.equal(r.fields.remote, remote, 'the reloaded page\'s write is applied');
    assert.equal(r.rev, rev);
    assert.deepEqual(p.fields(), r.fields);
    assert.equal((await goRead('players')).fields[addr], 'audio', 'the blind write is applied too');
    page.close();
  }
});

test('strings at the edges of Unicode reach every replica unchanged; a cut surrogate is refused locally', async () => {
  const a = await client();
  const b = await client({ base: GW2 });
  const obj = `shared/unicode/${SEED}`;
  const oa = a.object(obj);
  const ob = b.object(obj);
  await Promise.all([oa.ready, ob.ready]);
  // Field names carry the same characters (whole ones: a slice could cut a pair).
  const values = Object.fromEntries(UNI.map((v, i) => [`f${i}${[...v].slice(0, 2).join('')}`, v]));
  const rev = await oa.set(values);
  await until(() => ob.rev === rev, 'the other replica');
  assert.deepEqual(ob.fields(), oa.fields());
  assert.deepEqual((await goRead(obj)).fields, oa.fields());
  const cut = 'Bj\u{1F600}'.slice(0, 3);
  await assert.rejects(oa.set({ cut }), (e) => e.code === 'bad_op');
  assert.deepEqual((await goRead(obj)).fields, ob.fields());
  a.close();
  b.close();
});

test('a token the site backend signs itself, as docs/dsm-protocol.md shows, is accepted', async () => {
  // The doc's example, line for line.
  const { createHmac, randomBytes } = await import('node:crypto');
  const b32 = (b) => { let bits = 0, v = 0, out = '';
    for (const x of b) { v = (v << 8) | x; bits += 8;
      while (bits >= 5) { out += 'abcdefghijklmnopqrstuvwxyz234567'[(v >>> (bits - 5)) & 31]; bits -= 5; } }
    return bits ? out + 'abcdefghijklmnopqrstuvwxyz234567'[(v << (5 - bits)) & 31] : out; };
  const client = b32(randomBytes(16));
  const claims = Buffer.from(JSON.stringify({ k: client, u: 'alice', exp: Math.floor(Date.now() / 1000) + 3600 }));
  const token = claims.toString('base64url') + '.' +
    createHmac('sha256', process.env.DSM_SECRET).update(claims).digest('base64url');
  assert.equal(client.length, 26);
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const dsm = await client_({ session: async () => ({ client, token, expires }) });
  assert.equal(dsm.client, client);
  assert.equal(dsm.user, 'alice');
  const own = dsm.object('users/alice');
  await own.ready;
  const other = dsm.object('users/bob');
  await assert.rejects(other.ready, (e) => e.code === 'forbidden');
  dsm.close();
});
