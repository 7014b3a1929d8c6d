// What the page says (callview.js): every state of a call, every failure a person meets,
// the connection problems and the microphone errors, in words; and what a typed name
// becomes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clock, connectionText, failureText, headline, mediaText, micText, parseQuality, peerName, qualityText, regText, target } from '../callview.js';

test('headline of each call state', () => {
  const cases = [
    [{ playerState: 'idle' }, 'idle', 'Ready to call'],
    [{ playerState: 'idle', ready: false }, 'idle', 'Not connected to the gateway yet'],
    [{ playerState: 'connecting', remote: 'sip:bob@example.com' }, 'calling', 'Calling bob…'],
    [{ playerState: 'connecting', remote: 'sip:bob@example.com', progress: '180 Ringing' }, 'calling', 'Ringing at bob…'],
    [{ playerState: 'connecting', remote: 'sip:bob@example.com', progress: '183 Session Progress' }, 'calling', 'Connecting to bob…'],
    [{ playerState: 'ringing', caller: '"Alice A" <sip:alice@example.com>' }, 'incoming', 'Alice A is calling you'],
    [{ playerState: 'connecting', dir: 'in', remote: 'sip:alice@example.com' }, 'answering', 'Answering alice…'],
    [{ playerState: 'connected', remote: 'sip:bob@example.com' }, 'connected', 'In a call with bob'],
    [{ playerState: 'connected', remote: 'sip:bob@example.com', hold: 'remote' }, 'connected', 'bob put the call on hold'],
    [{ playerState: 'connected', remote: 'sip:bob@example.com', localHold: true }, 'connected', 'Putting bob on hold…'],
    [{ playerState: 'connected', remote: 'sip:bob@example.com', localHold: true, hold: 'local' }, 'connected', 'You put bob on hold'],
    [{ playerState: 'connected', conference: 'demo' }, 'connected', 'In conference demo'],
    [{ playerState: 'disconnected' }, 'ended', 'Call ended'],
    [{ playerState: 'disconnected', sipReason: 'caller cancelled' }, 'ended', 'The caller hung up before you answered'],
    [{ playerState: 'disconnected', sipReason: 'remote hangup' }, 'ended', 'The other side hung up'],
    [{ playerState: 'failed', sipStatus: '486', sipReason: 'Busy Here' }, 'failed', 'Busy'],
    [{ playerState: 'failed', sipReason: 'gateway instance lost' }, 'failed', 'The gateway handling the call stopped; please call again'],
  ];
  for (const [s, state, text] of cases) assert.deepEqual(headline(s), { state, text }, JSON.stringify(s));
});

test('failures in words, never raw reasons', () => {
  assert.equal(failureText({ sipStatus: '404', sipReason: 'Not Found' }), 'Nobody by that name or number');
  assert.equal(failureText({ sipStatus: '480' }), 'Not available right now');
  assert.equal(failureText({ sipStatus: '603', sipReason: 'Decline' }), 'Declined');
  assert.equal(failureText({ sipStatus: '502', sipReason: 'Bad Gateway' }), 'The network had a problem; please try again');
  assert.equal(failureText({ sipStatus: '499' }), 'The call was refused (499)');
  // A dependency's error text (typo included) never reaches the page.
  const t = failureText({ sipReason: 'send INVITE: transcation timed out' });
  assert.equal(t, 'The call failed');
  assert.equal(failureText({ sipStatus: '500', sipReason: 'media gateway: dial tcp: refused' }), 'The network had a problem; please try again');
});

test('media line', () => {
  assert.equal(mediaText({ playerState: 'idle', media: 'idle' }), '');
  assert.equal(mediaText({ playerState: 'connected', media: 'connecting' }), 'Connecting the audio…');
  assert.equal(mediaText({ playerState: 'connected', media: 'connected', stats: { decoded: 0 } }), 'Connected, waiting for sound from the other side…');
  assert.equal(mediaText({ playerState: 'connected', media: 'connected', stats: { decoded: 5 } }), 'Sound flows both ways.');
  assert.equal(mediaText({ playerState: 'connected', media: 'connected', stats: { decoded: 5 }, micError: {} }), 'You hear the other side (they cannot hear you).');
  assert.equal(mediaText({ playerState: 'connected', media: 'connected', suspended: true }), 'Click anywhere on the page to turn the sound on.');
  assert.equal(mediaText({ playerState: 'connected', media: 'failed', mediaError: 'replaced' }), 'The call’s audio moved to another tab or window.');
});

test('microphone errors', () => {
  assert.match(micText({ name: 'NotAllowedError', message: 'Permission denied' }), /^The microphone is blocked\./);
  assert.match(micText({ name: 'NotFoundError', message: 'Requested device not found' }), /^No microphone was found\./);
  assert.match(micText({ name: 'NotReadableError', message: 'Could not start audio source' }), /busy in another program/);
  assert.match(micText({ name: 'TypeError', message: 'x' }), /could not be used; you can still hear the call/);
});

test('connection problems', () => {
  assert.deepEqual(connectionText('open', null), { state: 'open', text: 'Connected', detail: '' });
  assert.match(connectionText('connecting', { kind: 'session', status: 403, message: 'no' }).detail, /refused to open a session for this page \(403\)/);
  assert.match(connectionText('connecting', { kind: 'socket', neverOpened: true }).detail, /refused the page’s WebSocket/);
  assert.equal(connectionText('connecting', { kind: 'socket', neverOpened: false }).text, 'Reconnecting…');
  assert.match(connectionText('connecting', { kind: 'session', status: 0 }).detail, /cannot be reached/);
  assert.equal(connectionText('closed', { kind: 'token' }).text, 'Signed out');
});

test('registration in words', () => {
  assert.equal(regText({ user: 'alice', sipURI: 'sip:alice@d', registration: 'registered' }), 'Reachable as sip:alice@d: calls to you ring here.');
  assert.match(regText({ user: 'alice', registration: 'failed', registrationError: 'REGISTER: 403 Forbidden' }), /did not accept alice \(the network does not allow this call\)/);
  assert.match(regText({ user: 'alice', registration: 'failed', registrationError: '401 Unauthorized' }), /wrong password/);
  assert.match(regText({ user: 'alice', registration: 'unregistered' }), /not reachable for incoming calls/);
});

test('what a typed name becomes', () => {
  assert.equal(target('bob', 'sip.dsmgw.test'), 'sip:bob@sip.dsmgw.test');
  assert.equal(target(' echo ', 'sip.dsmgw.test'), 'sip:echo@sip.dsmgw.test');
  assert.equal(target('bob@example.com', 'x'), 'sip:bob@example.com');
  assert.equal(target('sip:bob@example.com', 'x'), 'sip:bob@example.com');
  assert.equal(target('tel:+15551234', 'x'), 'tel:+15551234');
  assert.equal(target('+1 555 1234', ''), 'tel:+15551234');
  assert.equal(target('bob', ''), '');
  assert.equal(target('bo b', 'd'), '');
  assert.equal(target('', 'd'), '');
});

test('peer names and clock', () => {
  assert.equal(peerName('"Bob B" <sip:bob@x>'), 'Bob B');
  assert.equal(peerName('<sip:bob@x>'), 'bob');
  assert.equal(peerName('sip:bob@x;transport=tcp'), 'bob');
  assert.equal(peerName('tel:+155'), '+155');
  assert.equal(clock(0), '0:00');
  assert.equal(clock(75.9), '1:15');
  assert.equal(clock(3725), '1:02:05');
});

test('media quality: the gateway counters in words', () => {
  assert.equal(parseQuality(''), null);
  assert.equal(parseQuality('{bad'), null);
  assert.equal(parseQuality('7'), null);
  const net = parseQuality('{"in_lost":3,"in_expected":400,"in_jitter_ms":4.25,"drops":1}');
  assert.deepEqual(net, { inLost: 3, inExpected: 400, inJitterMs: 4.25, outLost: null, outJitterMs: null, drops: 1 });
  const q = { lost: 2, jitterMs: 1.5, bufferMs: 60 };
  assert.equal(qualityText(q, null), 'Lost 2 packets · jitter 1.5 ms · buffer 60 ms');
  assert.equal(qualityText(q, net),
    'Lost 2 packets · jitter 1.5 ms · buffer 60 ms. Gateway: the network lost 3 packets of 400 on the way to you (0.8%), their jitter 4.3 ms, the gateway discarded 1 packet.');
  const clean = parseQuality('{"in_lost":0,"in_expected":50,"in_jitter_ms":0,"out_lost":0,"out_jitter_ms":0.5,"drops":0}');
  assert.equal(qualityText(q, clean),
    'Lost 2 packets · jitter 1.5 ms · buffer 60 ms. Gateway: the network lost nothing on the way to you, their jitter 0.0 ms, the other side missed none of yours.');
  assert.match(qualityText(q, { ...clean, outLost: 1 }), /the other side missed 1 packet of yours/);
});
