// The player and user adapters against a running gateway (the field writes and reactions;
// the audio path is covered by the Go browser test), and the RTP codec as a unit.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadSchema } from '../schema.js';
import { Player } from '../player.js';
import { Users } from '../users.js';
import { RTPSender, isRTCP, parseRTP } from '../rtp.js';
import { decode, encode } from '../g711.js';
import { GW, client, goCommit, goRead, needGateway, until } from './gateway.js';

test('rtp: sender numbering and parser bounds', () => {
  const s = new RTPSender(8, { ssrc: 0xdeadbeef, seq: 65535, timestamp: 4294967200 });
  const a = s.packet(new Uint8Array(160), 160);
  const b = s.packet(new Uint8Array(160), 160);
  const pa = parseRTP(a);
  const pb = parseRTP(b);
  assert.deepEqual([pa.pt, pa.marker, pa.seq, pa.timestamp, pa.ssrc, pa.payload.length], [8, true, 65535, 4294967200, 0xdeadbeef, 160]);
  assert.deepEqual([pb.marker, pb.seq, pb.timestamp], [false, 0, 64]);
  // CSRCs, an extension and padding are skipped.
  const x = new Uint8Array([0xb1, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 9, 9, 9, 9, 0xbe, 0xde, 0, 1, 1, 2, 3, 4, 0x55, 0x66, 0, 2]);
  assert.deepEqual([...parseRTP(x).payload], [0x55, 0x66]);
  assert.equal(parseRTP(new Uint8Array(11)), null, 'short');
  assert.equal(parseRTP(new Uint8Array([0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), null, 'version 1');
  assert.equal(parseRTP(new Uint8Array([0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), null, 'CSRCs beyond the end');
  assert.equal(parseRTP(new Uint8Array([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])), null, 'zero padding');
  assert.equal(parseRTP(new Uint8Array([0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20])), null, 'padding beyond the start');
  const rr = new Uint8Array([0x80, 201, 0, 1, 0, 0, 0, 1]);
  assert.ok(isRTCP(rr));
  assert.equal(parseRTP(rr), null);
});

test('rtp: the parser never throws on random bytes and never reads past the packet', () => {
  let x = 12345;
  const next = () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < 20000; i++) {
    const b = Uint8Array.from({ length: next() % 64 }, next);
    if (i % 2) b[0] = 0x80 | (b[0] & 0x3f); // often version 2
    const p = parseRTP(b);
    if (p) assert.ok(p.payload.byteOffset >= 12 && p.payload.byteOffset + p.payload.length <= b.length);
  }
});

test('g711: a round trip keeps a tone within the quantisation error', () => {
  const pcm = Int16Array.from({ length: 160 }, (_, i) => Math.round(10000 * Math.sin((2 * Math.PI * 440 * i) / 8000)));
  for (const law of ['PCMU', 'PCMA']) {
    const back = decode(law, encode(law, pcm));
    for (let i = 0; i < pcm.length; i++) assert.ok(Math.abs(back[i] - pcm[i]) <= Math.abs(pcm[i]) / 16 + 16, `${law} sample ${i}`);
  }
  assert.throws(() => encode('G722', pcm), /unknown encoding/);
});

async function started() {
  needGateway();
  const schema = await loadSchema(GW);
  const dsm = await client();
  const player = new Player(dsm, schema);
  await player.start();
  return { schema, dsm, player };
}

test('player: start adds the index entry; call writes the fields the AS adapter acts on', async () => {
  const { dsm, player } = await started();
  assert.equal((await goRead('players')).fields[player.addr], 'audio');
  // Leftovers of an earlier call are cleared by the next one.
  await goCommit(player.addr, [
    { o: 'set', f: 'player_state', v: 'failed' }, { o: 'set', f: 'sip_status', v: '486' },
    { o: 'set', f: 'sip_reason', v: 'Busy Here' }, { o: 'set', f: 'mgw_state', v: 'failed' },
  ]);
  await until(() => player.status.sipStatus === '486', 'the failed call');
  const states = [];
  player.onChange((s) => states.push(s.playerState));
  await player.call('sip:bob@example.com', { encoding: 'PCMA' });
  assert.deepEqual((await goRead(player.addr)).fields, {
    player_state: 'connecting', remote: 'sip:bob@example.com', service: 'mmtel', encoding: 'PCMA',
  });
  assert.ok(states.includes('connecting'));
  await assert.rejects(player.call('sip:carol@example.com'), /already connecting/);
  // The AS adapter reports progress, then the far end rejects.
  await goCommit(player.addr, [{ o: 'set', f: 'progress', v: '180 Ringing' }]);
  await until(() => player.status.progress === '180 Ringing', 'progress');
  await goCommit(player.addr, [
    { o: 'set', f: 'player_state', v: 'failed' }, { o: 'set', f: 'mgw_state', v: 'failed' },
    { o: 'set', f: 'sip_status', v: '603' }, { o: 'set', f: 'sip_reason', v: 'Decline' },
  ]);
  await until(() => player.status.playerState === 'failed', 'failure');
  assert.equal(player.status.sipReason, 'Decline');
  assert.equal(player.status.media, 'idle');
  // Joining a conference afterwards drops the remote.
  await player.join('conf-7');
  const f = (await goRead(player.addr)).fields;
  assert.equal(f.conference, 'conf-7');
  assert.equal(f.remote, undefined);
  await player.hangup();
  assert.equal((await goRead(player.addr)).fields.player_state, 'disconnected');
  dsm.close();
});

test('player: incoming call answered or rejected; DTMF appends to unconsumed digits', async () => {
  const { dsm, player } = await started();
  await goCommit(player.addr, [{ o: 'set', f: 'player_state', v: 'ringing' }, { o: 'set', f: 'caller', v: 'sip:dave@example.com' }]);
  await until(() => player.status.playerState === 'ringing', 'ringing');
  assert.equal(player.status.caller, 'sip:dave@example.com');
  await player.reject();
  assert.equal((await goRead(player.addr)).fields.player_state, 'disconnected');
  await assert.rejects(player.answer(), (e) => e.code === 'expect_failed');

  await goCommit(player.addr, [{ o: 'set', f: 'player_state', v: 'ringing' }]);
  await until(() => player.status.playerState === 'ringing', 'ringing again');
  await player.answer({ encoding: 'PCMU' });
  assert.deepEqual(
    [(await goRead(player.addr)).fields.player_state, (await goRead(player.addr)).fields.encoding],
    ['connecting', 'PCMU'],
  );
  await goCommit(player.addr, [{ o: 'set', f: 'player_state', v: 'connected' }, { o: 'set', f: 'mgw_state', v: 'connected' }]);
  await until(() => player.status.playerState === 'connected', 'connected');

  await player.dtmf('1');
  await player.dtmf('2');
  assert.equal((await goRead(player.addr)).fields.dtmf, '12');
  // The AS adapter consumes what it sent (expect + del), then the same digit again is sent.
  await goCommit(player.addr, [{ o: 'expect', f: 'dtmf', v: '12' }, { o: 'del', f: 'dtmf' }]);
  await until(() => player.status && player.obj.get('dtmf') === undefined, 'consumed digits');
  await player.dtmf('2');
  assert.equal((await goRead(player.addr)).fields.dtmf, '2');
  await assert.rejects(player.dtmf('x'), /bad DTMF/);
  await player.hangup();
  assert.equal((await goRead(player.addr)).fields.player_state, 'disconnected');
  dsm.close();
});

test('users: the demo sign-in writes sign_in at once and on every refresh, and sign-out deletes it', async () => {
  needGateway();
  const schema = await loadSchema(GW);
  const user = `s${Date.now() % 1e8}`;
  const dsm = await client({ user });
  const users = new Users(dsm, schema);
  await users.start();
  const stop = users.signIn(0.2);
  await until(async () => !!(await goRead(`users/${user}`)).fields.sign_in, 'sign_in written');
  const first = (await goRead(`users/${user}`)).fields.sign_in;
  await until(async () => (await goRead(`users/${user}`)).fields.sign_in !== first, 'sign_in refreshed');
  stop();
  await users.signOut();
  assert.equal((await goRead(`users/${user}`)).fields.sign_in, undefined);
  users.close();
  dsm.close();
});

test('users: registration state, conferences and participant lists follow the DSM', async () => {
  needGateway();
  const schema = await loadSchema(GW);
  const user = `u${Date.now() % 1e8}`;
  const dsm = await client({ user });
  assert.equal(dsm.user, user);
  const users = new Users(dsm, schema);
  await users.start();
  let snap = users.snapshot();
  assert.equal(snap.registration, 'unregistered');
  assert.deepEqual(snap.conferences, []);
  const seen = [];
  users.onChange((s) => seen.push(s));
  await goCommit('users', [{ o: 'set', f: user, v: 'Test User' }]);
  await goCommit(`users/${user}`, [
    { o: 'set', f: 'registration', v: 'registered' }, { o: 'set', f: 'sip_uri', v: `sip:${user}@example.com` },
    { o: 'set', f: 'conferences', v: 'c1 c2' },
  ]);
  await goCommit(`users/${user}/conf/c1`, [
    { o: 'set', f: 'sip:bob@example.com', v: JSON.stringify({ display: 'Bob', status: 'connected' }) },
    { o: 'set', f: 'sip:amy@example.com', v: JSON.stringify({ display: 'Amy', status: 'on-hold' }) },
  ]);
  await until(() => users.snapshot().conferences[0]?.participants.length === 2, 'participants of c1');
  snap = users.snapshot();
  assert.equal(snap.registration, 'registered');
  assert.equal(snap.sipURI, `sip:${user}@example.com`);
  assert.deepEqual(snap.conferences.map((c) => c.id), ['c1', 'c2']);
  assert.deepEqual(snap.conferences[0].participants, [
    { entity: 'sip:amy@example.com', display: 'Amy', status: 'on-hold' },
    { entity: 'sip:bob@example.com', display: 'Bob', status: 'connected' },
  ]);
  assert.ok(snap.directory.some((d) => d.user === user && d.name === 'Test User'));
  // Someone leaves; the user loses access to c2.
  await goCommit(`users/${user}/conf/c1`, [{ o: 'del', f: 'sip:amy@example.com' }]);
  await goCommit(`users/${user}`, [{ o: 'set', f: 'conferences', v: 'c1' }]);
  await until(() => {
    const s = users.snapshot();
    return s.conferences.length === 1 && s.conferences[0].participants.length === 1;
  }, 'the participant to leave');
  assert.ok(!dsm.objects.has(`users/${user}/conf/c2`), 'c2 unsubscribed');
  assert.ok(seen.length > 0);
  users.close();
  dsm.close();
});

test('users: the page watches and unwatches conferences (its token may write its own list)', async () => {
  needGateway();
  const schema = await loadSchema(GW);
  const user = `w${Date.now() % 1e8}`;
  const dsm = await client({ user });
  const users = new Users(dsm, schema);
  await users.start();
  assert.equal(await users.watch('room1'), true);
  assert.equal(await users.watch('room1'), false, 'listed already');
  // Another writer (the same user's other tab) changes the list meanwhile: kept.
  await goCommit(`users/${user}`, [{ o: 'set', f: 'conferences', v: 'room1 other' }]);
  await until(() => users.conferenceIDs().length === 2, 'the other write');
  assert.equal(await users.watch('room2'), true);
  assert.equal((await goRead(`users/${user}`)).fields.conferences, 'room1 other room2');
  assert.equal(await users.unwatch('room1'), true);
  assert.equal(await users.unwatch('room1'), false, 'not listed');
  assert.equal((await goRead(`users/${user}`)).fields.conferences, 'other room2');
  assert.throws(() => users.watch('a b'), /bad conference id/);
  assert.throws(() => users.watch('a/b'), /bad conference id/);
  // Nobody else's list: another user's token may neither read nor write it.
  const other = await client({ user: `${user}x` });
  const theirs = new Users(other, schema, { user });
  await assert.rejects(theirs.start(), (err) => err.code === 'forbidden');
  await assert.rejects(theirs.watch('room3'), (err) => err.code === 'forbidden');
  assert.equal((await goRead(`users/${user}`)).fields.conferences, 'other room2');
  theirs.close();
  other.close();
  users.close();
  dsm.close();
});
