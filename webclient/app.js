// The demo page: a web phone. Sign in (demo sessions), call a SIP address or a name of the
// configured domain, answer or decline, hang up, mute, hold, volume, keypad (buttons and
// keyboard), level meters, call timer, ringback and ringtone, join a conference or a talk
// group (push to talk, ptt.js), and the call's state in words (callview.js). Everything
// goes through the DSM: the page writes fields of its player object and renders what the
// gateway writes. The session is kept in sessionStorage, so a reload (even mid-call)
// comes back to the same client key, player object and call.
// window.dsmgw exposes the pieces for debugging and for the browser tests.

import { DSM } from './dsm.js';
import { loadSchema } from './schema.js';
import { Player } from './player.js';
import { Users } from './users.js';
import { mountPushToTalk } from './ptt.js';
import { LIVE, clock, connectionText, headline, mediaText, micText, peerName, qualityText, regText, target } from './callview.js';
import { Tones } from './tones.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const user = params.get('user') || undefined;
const TITLE = document.title;
const app = { dsm: null, schema: null, player: null, users: null, joined: null, ready: false, domain: '', connectedAt: 0 };
window.dsmgw = app;

function text(id, v) {
  const el = $(id);
  const t = v === undefined || v === null || v === '' ? '–' : String(v);
  if (el.textContent !== t) el.textContent = t;
}

function line(id, v) {
  const el = $(id);
  if (el.textContent !== (v || '')) el.textContent = v || '';
}

function notice(msg) {
  const el = $('notice');
  el.hidden = !msg;
  line('notice', msg);
}

// sessionStore keeps the page's session for this tab across reloads (sessionStorage is
// per tab: another tab gets a session, a client key and a player of its own).
const sessionStore = {
  key: `dsmgw.session.${user ?? ''}`,
  load() {
    try {
      return JSON.parse(sessionStorage.getItem(this.key) || 'null');
    } catch {
      return null;
    }
  },
  save(s) {
    try {
      sessionStorage.setItem(this.key, JSON.stringify(s));
    } catch {
      // storage full or disabled: a reload then starts a new session
    }
  },
};

// ---- rendering ----

function renderConnection() {
  const dsm = app.dsm;
  const c = connectionText(dsm.state, dsm.problem);
  const el = $('conn');
  el.dataset.state = c.state;
  line('conn', c.text);
  el.title = c.detail;
  if (c.detail && dsm.state !== 'open') notice(c.detail);
  else if ($('notice').dataset.kind !== 'page') notice('');
  line('client', dsm.client ? `client ${dsm.client}` : '');
  line('instance', dsm.instance ? `gateway ${dsm.instance}` : '');
  renderCall();
}

function controlsReady() {
  return app.ready && app.dsm?.state === 'open';
}

function renderCall() {
  const ready = controlsReady();
  document.body.dataset.ready = String(ready);
  const p = app.player;
  const s = p ? p.status : { playerState: 'idle', media: 'idle', stats: {}, levels: {}, quality: {} };
  const live = LIVE.has(s.playerState);
  // A call the page hung up may still be ending at the gateway (a CANCEL waiting for its
  // answer): a new call waits for it, and the page says so.
  const ending = !live && (s.mgwState === 'connecting' || s.mgwState === 'connected');
  const h = ending ? { state: 'ending', text: 'Ending the previous call…' } :
    headline({ ...s, dir: s.caller ? 'in' : 'out', ready });
  const hl = $('call-status');
  hl.dataset.state = h.state;
  line('call-status', h.text);
  document.body.dataset.call = live ? s.playerState : 'idle';
  line('peer', live && s.playerState !== 'ringing' ? (s.conference ? '' : s.remote) : '');
  if (s.playerState === 'connected' && !app.connectedAt) app.connectedAt = Date.now();
  if (s.playerState !== 'connected') app.connectedAt = 0;
  line('timer', app.connectedAt ? clock((Date.now() - app.connectedAt) / 1000) : '');
  let media = mediaText(s);
  if (s.micError && live) media = `${micText(s.micError)}`;
  if (s.muted && s.playerState === 'connected') media = 'You are muted.';
  line('media', media);
  $('media').dataset.state = s.micError ? 'warn' : s.media;

  const ringing = s.playerState === 'ringing';
  $('incoming').hidden = !ringing || !ready;
  line('caller', peerName(s.caller) || 'Someone');
  $('caller').title = s.caller || '';
  $('hangup').disabled = !ready || !live || ringing;
  $('hangup').textContent = s.conference && live ? 'Leave' : 'Hang up';
  const idle = ready && !live && !ending;
  for (const id of ['remote', 'call', 'conference', 'join', 'talkgroup', 'pttjoin']) $(id).disabled = !idle;
  for (const b of $('remote-help').querySelectorAll('button')) b.disabled = !idle;
  for (const b of $('pad').querySelectorAll('button')) b.disabled = !ready || s.playerState !== 'connected';
  $('user').disabled = $('signin-btn').disabled = !app.ready;

  const inCall = s.playerState === 'connected';
  $('meters').hidden = !inCall;
  $('controls').hidden = !inCall;
  $('mic-meter').value = Math.min(1, (s.levels?.mic ?? 0) * 2);
  $('rx-meter').value = Math.min(1, (s.levels?.out ?? 0) * 3);
  $('mute').setAttribute('aria-pressed', String(!!s.muted));
  $('mute').textContent = s.muted ? 'Unmute' : 'Mute';
  $('hold').setAttribute('aria-pressed', String(!!s.localHold));
  $('hold').textContent = s.localHold ? 'Resume' : 'Hold';
  const q = s.quality || {};
  line('quality', inCall && s.media === 'connected' ? qualityText(q, s.network) : '');

  // Technical details: the raw fields, cleared when no call is on.
  $('player-state').dataset.state = s.playerState;
  text('player-state', s.playerState);
  text('mgw-state', live || ending ? s.mgwState : '');
  text('progress', live ? s.progress : '');
  text('sip', s.sipStatus || s.sipReason ? `${s.sipStatus ?? ''} ${s.sipReason ?? ''}`.trim() : '');
  text('media-raw', s.media + (s.mediaError ? ` (${s.mediaError})` : '') + (s.hold ? ` · hold ${s.hold}` : ''));
  const st = s.stats || {};
  text('stats', s.media === 'idle' ? '' : `sent ${st.sent} · received ${st.received} · played ${st.played} frames`);

  renderAlerts(s);
}

// renderAlerts plays ringback while the far end rings, the ringtone and a title alert
// while a call comes in.
function renderAlerts(s) {
  const t = app.tones;
  if (!t) return;
  const ringback = s.playerState === 'connecting' && !s.caller && /^18[02]/.test(s.progress || '') && s.media !== 'connected';
  const ringing = s.playerState === 'ringing' && controlsReady();
  t.play(ringing ? 'ring' : ringback ? 'ringback' : '');
  if (ringing) {
    const who = peerName(s.caller) || 'Someone';
    if (!app.titleTimer) {
      let on = false;
      app.titleTimer = setInterval(() => {
        on = !on;
        document.title = on ? `📞 ${who} is calling` : TITLE;
      }, 1000);
      if (globalThis.Notification?.permission === 'granted' && document.hidden) {
        try {
          app.notification = new Notification(`${who} is calling`, { body: s.caller || '', tag: 'dsmgw-call' });
        } catch {
          // notifications may be unavailable in this context
        }
      }
    }
  } else if (app.titleTimer) {
    clearInterval(app.titleTimer);
    app.titleTimer = null;
    document.title = TITLE;
    app.notification?.close();
    app.notification = null;
  }
}

function renderPeople(u, joined) {
  if (!u.user) return;
  const reg = $('registration');
  line('registration', regText(u));
  reg.title = u.registrationError || '';
  reg.dataset.state = u.registration;
  const dl = $('conferences');
  dl.replaceChildren(...u.conferences.map((c) => Object.assign(document.createElement('option'), { value: c.id })));
  const STATUS = { connected: 'connected', 'on-hold': 'on hold', disconnected: 'gone', alerting: 'ringing' };
  $('rosters').replaceChildren(
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

// ---- actions ----

// act wraps a handler: the form never submits (no reload with ?remote= in the address),
// nothing happens before the page is connected, and an error is said in words.
const act = (fn) => async (ev) => {
  ev?.preventDefault();
  if (!controlsReady()) return;
  try {
    await fn(ev);
  } catch (err) {
    console.warn('dsmgw:', err);
    pageNotice(err.code === 'expect_failed' ? 'The call changed meanwhile; try again.' : 'That did not work; try again.');
  }
};

function pageNotice(msg) {
  $('notice').dataset.kind = 'page';
  notice(msg);
  clearTimeout(app.noticeTimer);
  app.noticeTimer = setTimeout(() => {
    $('notice').dataset.kind = '';
    notice('');
  }, 6000);
}

// leave ends the call and, for a room that Join added to the user's list, stops watching
// it (the adapter unsubscribes and clears its participant list).
async function leave() {
  const j = app.joined;
  app.joined = null;
  await app.player.hangup();
  if (j?.added && app.users) await app.users.unwatch(j.id);
  if (app.users) renderPeople(app.users.snapshot(), undefined);
}

function dialNow(input) {
  const to = target(input, app.domain);
  if (!to) {
    pageNotice(app.domain ? 'Type a name (like bob) or a SIP address (sip:bob@example.com).' : 'Type a SIP address such as sip:bob@example.com.');
    return null;
  }
  app.tones?.unlock();
  return app.player.call(to, { encoding: $('encoding').value });
}

function sendDigit(d) {
  app.player.dtmf(d).then(() => line('dtmf-sent', `Sent ${d}`)).catch(() => pageNotice('The tone could not be sent.'));
}

// Listeners exist from the first moment, before the page is connected: a click on Call
// or Enter in a field then does nothing instead of submitting the form.
$('dial').addEventListener('submit', act(() => dialNow($('remote').value)));
for (const b of $('remote-help').querySelectorAll('button[data-dial]')) {
  b.addEventListener('click', act(() => {
    $('remote').value = b.dataset.dial;
    return dialNow(b.dataset.dial);
  }));
}
$('signin').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const name = $('user').value.trim();
  if (!name || !$('user').checkValidity()) {
    pageNotice('A name of letters, digits and . _ - + : @ only.');
    return;
  }
  globalThis.Notification?.requestPermission?.().catch(() => {});
  location.search = `?user=${encodeURIComponent(name)}`;
});
// Signing out of a demo sign-in un-registers the user first (else it stays reachable
// until the registration's session runs out); then the page starts over signed out.
$('signout').addEventListener('click', async (ev) => {
  if (!app.stopSignIn) return; // a plain link back to the page
  ev.preventDefault();
  app.stopSignIn();
  await Promise.race([app.users.signOut().catch(() => {}), new Promise((r) => setTimeout(r, 3000))]);
  location.href = $('signout').href;
});
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
  await app.player.join(id, { encoding: $('encoding').value });
}));
$('pttform').addEventListener('submit', (ev) => ev.preventDefault()); // ptt.js joins
$('hangup').addEventListener('click', act(() => leave()));
$('answer').addEventListener('click', act(() => {
  app.tones?.unlock();
  return app.player.answer({ encoding: $('encoding').value });
}));
$('reject').addEventListener('click', act(() => app.player.reject()));
$('mute').addEventListener('click', act(() => app.player.setMuted(!app.player.muted)));
$('hold').addEventListener('click', act(() => app.player.setHold(!app.player.localHold)));
$('volume').addEventListener('input', () => app.player?.setVolume($('volume').value));
for (const b of $('pad').querySelectorAll('button')) b.addEventListener('click', act(() => sendDigit(b.textContent)));
// Keyboard DTMF: digits, * and # during a call, unless typing in a field.
document.addEventListener('keydown', (ev) => {
  if (!controlsReady() || app.player?.status.playerState !== 'connected') return;
  if (ev.target.closest?.('input, select, textarea') || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (/^[0-9*#]$/.test(ev.key)) {
    ev.preventDefault();
    sendDigit(ev.key);
  }
});
// A click anywhere lets the browser start the sound it held back (autoplay rules).
document.addEventListener('click', () => {
  app.tones?.unlock();
  app.player?.media?.ctx?.resume().catch(() => {});
});

async function main() {
  const [schema, page] = await Promise.all([
    loadSchema(location.href),
    fetch(new URL('/dsm/page.json', location.href)).then((r) => (r.ok ? r.json() : {})).catch(() => ({})),
  ]);
  app.schema = schema;
  app.domain = page.sip_domain || '';
  if (app.domain) $('remote').placeholder = `bob, or sip:bob@${app.domain}`;
  $('signin').hidden = !!user;
  $('signout').hidden = !user;
  if (user) $('registration').textContent = `Signed in as ${user}.`;
  app.tones = new Tones();
  const dsm = new DSM({ user, store: sessionStore });
  app.dsm = dsm;
  dsm.onConnection(() => renderConnection());
  dsm.onError((e) => console.warn('dsm:', e.message));
  renderConnection();
  await dsm.start();

  // ?jitter=N fixes the playout buffer at N frames of 20 ms (the latency benchmark
  // compares it with the adaptive default).
  const player = new Player(dsm, schema, {
    processing: params.get('processing') !== 'off',
    probe: params.get('probe') === 'on',
    jitterFrames: Number(params.get('jitter')) || undefined,
  });
  app.player = player;
  player.onChange(() => renderCall());
  await player.start();
  player.onChange((s) => {
    // The call of a joined room ended (the room or the network hung up): leave it too.
    const live = LIVE.has(s.playerState);
    if (app.joined && live) app.joined.live = true;
    else if (app.joined?.live) leave().catch(() => {});
  });
  app.ptt = mountPushToTalk(player, schema, { form: $('pttform'), group: $('talkgroup'), button: $('ptt'), floor: $('floor') },
    { encoding: () => $('encoding').value, onError: () => pageNotice('Could not join the talk group.') });
  if (dsm.user) {
    const users = new Users(dsm, schema, { user: dsm.user });
    app.users = users;
    users.onChange((u) => renderPeople(u, app.joined?.id));
    await users.start();
    // Demo sign-in: the gateway registers this user with the network while the page
    // keeps saying it is here (a real site's backend registers its users instead).
    if (page.sign_in_refresh > 0) app.stopSignIn = users.signIn(page.sign_in_refresh);
  }
  setInterval(() => app.connectedAt && renderCall(), 1000); // the call timer
  app.ready = true;
  renderConnection();
}

main().catch((err) => {
  console.error('dsmgw:', err);
  notice(app.dsm?.problem ? connectionText(app.dsm.state, app.dsm.problem).detail : 'The page could not start. Reload it to try again.');
  $('conn').dataset.state = 'error';
  line('conn', 'Not connected');
});
