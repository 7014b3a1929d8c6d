// The demo page: dial a SIP URI or join a conference or a talk group (push to talk,
// ptt.js), hang up, answer or reject, send DTMF, and watch the call state and the
// conference participants. Everything goes through the
// DSM: the page writes fields of its player object and renders what the gateway writes.
// window.dsmgw exposes the pieces for debugging and for the browser test.

import { DSM } from './dsm.js';
import { loadSchema } from './schema.js';
import { Player } from './player.js';
import { Users } from './users.js';
import { mountPushToTalk } from './ptt.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const user = params.get('user') || undefined;

function text(id, v) {
  const el = $(id);
  const t = v === undefined || v === null || v === '' ? '–' : String(v);
  if (el.textContent !== t) el.textContent = t;
}

function showError(err) {
  const el = $('conn');
  el.dataset.state = 'error';
  el.textContent = err.message || String(err);
}

function renderConnection(dsm, state) {
  const el = $('conn');
  el.dataset.state = state;
  el.textContent = state === 'open' ? 'connected' : state === 'connecting' ? 'reconnecting…' : 'offline';
  text('client', dsm.client ? `client ${dsm.client}` : '');
  text('instance', dsm.instance ? `gateway ${dsm.instance}` : '');
}

function renderCall(s) {
  const ps = $('player-state');
  ps.dataset.state = s.playerState;
  text('player-state', s.playerState);
  text('peer', s.playerState === 'ringing' ? s.caller : s.remote || (s.conference ? `conference ${s.conference}` : ''));
  text('mgw-state', s.mgwState);
  text('progress', s.progress);
  text('sip', s.sipStatus || s.sipReason ? `${s.sipStatus} ${s.sipReason}`.trim() : '');
  text('media', s.media + (s.mediaError ? ` (${s.mediaError})` : '') + (s.hold ? ' · on hold' : ''));
  const live = ['ringing', 'connecting', 'connected'].includes(s.playerState);
  const ringing = s.playerState === 'ringing';
  $('incoming').hidden = !ringing;
  $('caller').textContent = s.caller || 'unknown caller';
  $('hangup').disabled = !live || ringing;
  $('hangup').textContent = s.conference && live ? 'Leave' : 'Hang up';
  $('call').disabled = live;
  $('join').disabled = live;
  $('pttjoin').disabled = live;
  for (const b of $('pad').querySelectorAll('button')) b.disabled = s.playerState !== 'connected';
  const st = s.stats;
  $('stats').textContent = s.media === 'idle' ? '' : `RTP sent ${st.sent} · received ${st.received} · played ${st.played} frames`;
}

// STATUS is how a participant's RFC 4575 status reads on the page.
const STATUS = { connected: 'connected', 'on-hold': 'on hold', disconnected: 'gone', alerting: 'ringing' };

function renderPeople(u, joined) {
  if (!u.user) return;
  const reg = $('registration');
  reg.textContent = `${u.name || u.user}${u.sipURI ? ` <${u.sipURI}>` : ''}: ${u.registration}` +
    (u.registrationError ? ` (${u.registrationError})` : '');
  reg.dataset.state = u.registration;
  const dl = $('conferences');
  dl.replaceChildren(...u.conferences.map((c) => Object.assign(document.createElement('option'), { value: c.id })));
  const box = $('rosters');
  box.replaceChildren(
    ...u.conferences.map((c) => {
      const sec = document.createElement('div');
      sec.className = 'roster';
      sec.dataset.conference = c.id;
      if (c.id === joined) sec.dataset.joined = 'true';
      const here = c.participants.filter((p) => p.status !== 'disconnected').length;
      const h = document.createElement('h3');
      h.textContent = `${c.id} (${here})${c.id === joined ? ' · joined' : ''}`;
      const ul = document.createElement('ul');
      ul.setAttribute('aria-label', `participants of ${c.id}`);
      for (const p of c.participants) {
        const li = document.createElement('li');
        li.textContent = p.display;
        li.title = p.entity;
        li.dataset.status = p.status;
        const st = document.createElement('span');
        st.className = 'pstate';
        st.textContent = STATUS[p.status] ?? p.status;
        li.append(' ', st);
        ul.append(li);
      }
      sec.append(h, ul);
      return sec;
    }),
  );
}

// leave ends the call and, for a room that Join added to the user's list, stops watching
// it (the adapter unsubscribes and clears its participant list).
async function leave(app) {
  const j = app.joined;
  app.joined = null;
  await app.player.hangup();
  if (j?.added && app.users) await app.users.unwatch(j.id);
  if (app.users) renderPeople(app.users.snapshot(), undefined);
}

async function main() {
  const schema = await loadSchema(location.href);
  const dsm = new DSM({ user });
  const app = { dsm, schema, player: null, users: null, joined: null };
  window.dsmgw = app;
  dsm.onConnection((s) => renderConnection(dsm, s));
  dsm.onError((e) => console.warn('dsm:', e.message));
  await dsm.start();
  renderConnection(dsm, dsm.state);

  const player = new Player(dsm, schema, { processing: params.get('processing') !== 'off' });
  app.player = player;
  player.onChange(renderCall);
  await player.start();
  renderCall(player.status);

  const act = (fn) => async (ev) => {
    ev?.preventDefault();
    try {
      await fn();
    } catch (err) {
      text('sip', err.message);
    }
  };
  const encoding = () => $('encoding').value;
  $('dial').addEventListener('submit', act(() => player.call($('remote').value.trim(), { encoding: encoding() })));
  // Join: a signed-in user first watches the room (its participants appear under People),
  // then calls it. Leave hangs up and stops watching a room that Join added.
  $('joinform').addEventListener('submit', act(async () => {
    const id = $('conference').value.trim();
    let added = false;
    try {
      added = app.users ? await app.users.watch(id) : false;
    } catch (err) {
      console.warn('join: cannot watch the room:', err.message); // the call itself may still work
    }
    app.joined = { id, added, live: false };
    renderPeople(app.users?.snapshot() ?? {}, id);
    await player.join(id, { encoding: encoding() });
  }));
  $('hangup').addEventListener('click', act(() => leave(app)));
  player.onChange((s) => {
    // The call of a joined room ended (the room or the network hung up): leave it too.
    const live = ['ringing', 'connecting', 'connected'].includes(s.playerState);
    if (app.joined && live) app.joined.live = true;
    else if (app.joined?.live) leave(app).catch(() => {});
  });
  $('answer').addEventListener('click', act(() => player.answer({ encoding: encoding() })));
  $('reject').addEventListener('click', act(() => player.reject()));
  for (const b of $('pad').querySelectorAll('button')) {
    b.addEventListener('click', act(async () => {
      await player.dtmf(b.textContent);
      $('dtmf-sent').textContent = `sent ${b.textContent}`;
    }));
  }

  app.ptt = mountPushToTalk(player, schema, { form: $('pttform'), group: $('talkgroup'), button: $('ptt'), floor: $('floor') },
    { encoding, onError: (err) => text('sip', err.message) });

  if (dsm.user) {
    const users = new Users(dsm, schema, { user: dsm.user });
    app.users = users;
    users.onChange((u) => renderPeople(u, app.joined?.id));
    await users.start();
  }
  app.ready = true;
}

main().catch(showError);
