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
  $('call').disabled = live;
  $('join').disabled = live;
  $('pttjoin').disabled = live;
  for (const b of $('pad').querySelectorAll('button')) b.disabled = s.playerState !== 'connected';
  const st = s.stats;
  $('stats').textContent = s.media === 'idle' ? '' : `RTP sent ${st.sent} · received ${st.received} · played ${st.played} frames`;
}

function renderPeople(u) {
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
      const h = document.createElement('h3');
      h.textContent = `${c.id} (${c.participants.length})`;
      const ul = document.createElement('ul');
      ul.setAttribute('aria-label', `participants of ${c.id}`);
      for (const p of c.participants) {
        const li = document.createElement('li');
        li.textContent = p.display;
        li.title = p.entity;
        const st = document.createElement('span');
        st.className = 'pstate';
        st.textContent = p.status;
        li.append(' ', st);
        ul.append(li);
      }
      sec.append(h, ul);
      return sec;
    }),
  );
}

async function main() {
  const schema = await loadSchema(location.href);
  const dsm = new DSM({ user });
  const app = { dsm, schema, player: null, users: null };
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
  $('joinform').addEventListener('submit', act(() => player.join($('conference').value.trim(), { encoding: encoding() })));
  $('hangup').addEventListener('click', act(() => player.hangup()));
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
    users.onChange(renderPeople);
    await users.start();
  }
  app.ready = true;
}

main().catch(showError);
