// What the page says about a call, in words a person understands: the player's fields
// (player_state, progress, sip_status, sip_reason, hold …) and the media state become one
// headline, one line about the audio and one about the connection. Pure functions, so
// node's tests check every sentence (test/callview.test.js).

/** LIVE are the player states of a call that is not over. */
export const LIVE = new Set(['ringing', 'connecting', 'connected']);

// Final SIP statuses a person meets, as a person would say them (RFC 3261 section 21).
const STATUS = {
  400: 'The call could not be placed (the network refused the request)',
  403: 'The network does not allow this call',
  404: 'Nobody by that name or number',
  408: 'No answer',
  410: 'That number is no longer in use',
  480: 'Not available right now',
  484: 'The address is incomplete',
  486: 'Busy',
  487: 'Call cancelled',
  488: 'The other side cannot take this kind of call',
  500: 'The network had a problem; please try again',
  503: 'The network is unavailable; please try again',
  600: 'Busy everywhere',
  603: 'Declined',
  604: 'Nobody by that name or number',
};

// Reasons the gateway writes itself, mapped to sentences.
const REASON = {
  'caller cancelled': 'The caller hung up before you answered',
  'remote hangup': 'The other side hung up',
  'gateway instance lost': 'The gateway handling the call stopped; please call again',
  'no answer': 'Nobody answered',
  'no ACK': 'The other side never confirmed the call',
};

/** peerName returns a short name for a SIP URI or caller id ("Bob <sip:bob@x>" → Bob). */
export function peerName(v) {
  if (!v) return '';
  const m = /^\s*"?([^"<]*?)"?\s*<([^>]*)>/.exec(v);
  if (m && m[1]) return m[1];
  const uri = m ? m[2] : v;
  const u = /^(?:sips?|tel):([^@;]+)/.exec(uri);
  return u ? decodeURIComponent(u[1]) : uri;
}

/** failureText says why a call failed or ended. */
export function failureText(s) {
  if (s.sipReason && REASON[s.sipReason]) return REASON[s.sipReason];
  const code = Number(s.sipStatus);
  if (STATUS[code]) return STATUS[code];
  if (code >= 500) return 'The network had a problem; please try again';
  if (code >= 400) return `The call was refused (${code})`;
  if (s.sipReason && s.sipReason.startsWith('media gateway')) return 'The gateway could not set up the audio';
  return 'The call failed';
}

/**
 * headline is the sentence about the call: {state, text} where state is the page's
 * data-state (idle, calling, ringing, incoming, answering, connected, ended, failed).
 * s is Player.status plus dir ('out' or 'in', from what the page did) and conference.
 */
export function headline(s) {
  const who = peerName(s.playerState === 'ringing' ? s.caller : s.remote) || (s.conference ? `conference ${s.conference}` : 'the other side');
  switch (s.playerState) {
    case 'ringing':
      return { state: 'incoming', text: `${peerName(s.caller) || 'Someone'} is calling you` };
    case 'connecting': {
      if (s.dir === 'in') return { state: 'answering', text: `Answering ${who}…` };
      const p = String(s.progress || '');
      if (p.startsWith('180') || p.startsWith('182')) return { state: 'calling', text: `Ringing at ${who}…` };
      if (p.startsWith('183')) return { state: 'calling', text: `Connecting to ${who}…` };
      return { state: 'calling', text: `Calling ${who}…` };
    }
    case 'connected':
      if (s.hold === 'remote') return { state: 'connected', text: `${who} put the call on hold` };
      if (s.hold === 'local') return { state: 'connected', text: `You put ${who} on hold` };
      if (s.localHold) return { state: 'connected', text: `Putting ${who} on hold…` };
      return { state: 'connected', text: s.conference ? `In conference ${s.conference}` : `In a call with ${who}` };
    case 'disconnected':
      if (s.sipReason && REASON[s.sipReason]) return { state: 'ended', text: REASON[s.sipReason] };
      return { state: 'ended', text: 'Call ended' };
    case 'failed':
      return { state: 'failed', text: failureText(s) };
    default:
      return { state: 'idle', text: s.ready === false ? 'Not connected to the gateway yet' : 'Ready to call' };
  }
}

/** micText explains a microphone or audio error (the call goes on receive-only). */
export function micText(err) {
  const name = err?.name || '';
  const msg = String(err?.message || err || '');
  if (name === 'NotAllowedError' || /denied|not allowed|permission/i.test(msg)) {
    return 'The microphone is blocked. Allow it for this page (the icon in the address bar); you can still hear the call.';
  }
  if (name === 'NotFoundError' || /not found|no device|requested device/i.test(msg)) {
    return 'No microphone was found. Connect one to be heard; you can still hear the call.';
  }
  if (name === 'NotReadableError' || /could not start|in use/i.test(msg)) {
    return 'The microphone is busy in another program. Close it to be heard; you can still hear the call.';
  }
  if (name === 'SecurityError' || /secure context|insecure/i.test(msg)) {
    return 'The browser allows a microphone only on https pages; you can still hear the call.';
  }
  return 'The microphone could not be used; you can still hear the call.';
}

/**
 * mediaText is the line about the audio: what flows and, when it does not, why. m is
 * {media, mediaError, micError, stats, suspended, playerState}.
 */
export function mediaText(m) {
  if (!LIVE.has(m.playerState) && m.media === 'idle') return '';
  if (m.suspended) return 'Click anywhere on the page to turn the sound on.';
  switch (m.media) {
    case 'connecting':
      return 'Connecting the audio…';
    case 'failed':
      return m.mediaError === 'replaced'
        ? 'The call’s audio moved to another tab or window.'
        : 'The audio connection was lost.';
    case 'connected': {
      const st = m.stats || {};
      if (!st.decoded) return 'Connected, waiting for sound from the other side…';
      return m.micError ? 'You hear the other side (they cannot hear you).' : 'Sound flows both ways.';
    }
    default:
      return m.playerState === 'connected' ? 'Waiting for the audio…' : '';
  }
}

/**
 * parseQuality reads the media_quality field the gateway writes during a call (the media
 * gateway's counters: asadapter's MediaQuality): {inLost, inExpected, inJitterMs, outLost,
 * outJitterMs, drops}, outLost and outJitterMs null before the far end's first report;
 * null when the field is absent or unreadable.
 */
export function parseQuality(v) {
  if (!v) return null;
  let j;
  try {
    j = JSON.parse(v);
  } catch {
    return null;
  }
  if (typeof j !== 'object' || j === null) return null;
  const num = (x) => (typeof x === 'number' && Number.isFinite(x) ? x : null);
  return {
    inLost: num(j.in_lost) ?? 0,
    inExpected: num(j.in_expected) ?? 0,
    inJitterMs: num(j.in_jitter_ms) ?? 0,
    outLost: num(j.out_lost),
    outJitterMs: num(j.out_jitter_ms),
    drops: num(j.drops) ?? 0,
  };
}

const packets = (n) => (n === 1 ? '1 packet' : `${n} packets`);

/**
 * qualityText is the quality line of a connected call: q what the page's player measures
 * ({lost, jitterMs, bufferMs}), net the media gateway's counters (player.parseQuality,
 * null before the gateway's first report).
 */
export function qualityText(q, net) {
  const here = `Lost ${q.lost ?? 0} packets · jitter ${(q.jitterMs ?? 0).toFixed(1)} ms · buffer ${q.bufferMs ?? 0} ms`;
  if (!net) return here;
  const parts = [];
  const pct = net.inExpected > 0 ? ` (${((100 * net.inLost) / net.inExpected).toFixed(1)}%)` : '';
  parts.push(net.inLost > 0
    ? `the network lost ${packets(net.inLost)} of ${net.inExpected} on the way to you${pct}`
    : 'the network lost nothing on the way to you');
  parts.push(`their jitter ${net.inJitterMs.toFixed(1)} ms`);
  if (net.outLost !== null) parts.push(net.outLost > 0 ? `the other side missed ${packets(net.outLost)} of yours` : 'the other side missed none of yours');
  if (net.drops > 0) parts.push(`the gateway discarded ${packets(net.drops)}`);
  return `${here}. Gateway: ${parts.join(', ')}.`;
}

/** connectionText explains the page's link to the gateway. p is dsm.problem or null. */
export function connectionText(state, p) {
  if (state === 'open') return { state: 'open', text: 'Connected', detail: '' };
  if (!p) return { state, text: state === 'closed' ? 'Offline' : 'Connecting…', detail: '' };
  if (p.kind === 'session') {
    if (p.status === 403) {
      return { state: 'error', text: 'Refused', detail: 'The gateway refused to open a session for this page (403). ' +
        (p.message ? `It said: “${p.message}”. ` : '') + 'Check the address, or the proxy in front of the gateway.' };
    }
    if (p.status === 401) return { state: 'error', text: 'Session expired', detail: 'The session expired; reload the page.' };
    if (p.status) return { state: 'error', text: 'Gateway error', detail: `The gateway answered ${p.status} when the page asked for a session; retrying.` };
    return { state: 'error', text: 'Unreachable', detail: 'The gateway cannot be reached; retrying. Check the network.' };
  }
  if (p.kind === 'socket') {
    if (p.neverOpened) {
      return { state: 'error', text: 'Refused', detail: 'The gateway (or a proxy in front of it) refused the page’s WebSocket. ' +
        'A proxy must pass the Host header with its port and allow WebSocket upgrades (403 Forbidden otherwise); retrying.' };
    }
    return { state: 'connecting', text: 'Reconnecting…', detail: 'The connection to the gateway dropped; reconnecting.' };
  }
  if (p.kind === 'token') return { state: 'error', text: 'Signed out', detail: 'The page’s session ended; reload the page to continue.' };
  return { state: 'error', text: 'Offline', detail: p.message || '' };
}

/** regText says where the signed-in user stands with the network. */
export function regText(u) {
  switch (u.registration) {
    case 'registered':
      return `Reachable as ${u.sipURI || u.user}: calls to you ring here.`;
    case 'registering':
      return 'Signing in to the phone network…';
    case 'failed':
      return `The phone network did not accept ${u.user}${u.registrationError ? ` (${plainReg(u.registrationError)})` : ''}; you can still call out.`;
    default:
      return `Signed in as ${u.user}; not reachable for incoming calls (not registered with the phone network).`;
  }
}

function plainReg(e) {
  const m = /(\d{3})/.exec(e);
  if (m && STATUS[m[1]]) return STATUS[m[1]].toLowerCase();
  if (m && (m[1] === '401' || m[1] === '407')) return 'wrong password';
  return 'no answer from the network';
}

/**
 * target turns what a person typed into a SIP URI: "bob" → sip:bob@<domain>,
 * "bob@example.com" → sip:bob@example.com, a phone number → tel:, a URI as is. It returns
 * '' when nothing usable was typed.
 */
export function target(input, domain) {
  const v = String(input || '').trim();
  if (!v) return '';
  if (/^(sips?|tel):/i.test(v)) return v;
  if (v.includes('@')) return `sip:${v}`;
  if (/^\+?[0-9][0-9 ().-]*$/.test(v) && !domain) return `tel:${v.replace(/[ ().-]/g, '')}`;
  if (!domain) return '';
  if (!/^[A-Za-z0-9._~+*#-]+$/.test(v)) return '';
  return `sip:${v}@${domain}`;
}

/** clock formats a duration in seconds as m:ss or h:mm:ss. */
export function clock(sec) {
  sec = Math.max(0, Math.floor(sec));
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = String(sec % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
