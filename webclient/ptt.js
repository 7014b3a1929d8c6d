// Push-to-talk on a "poc" call (docs/push-to-talk.md): the page's half of floor control.
// Everything goes through the player object's fields: the page writes floor=request when
// the button (or the space bar) goes down and floor=release when it comes up; the AS
// adapter, acting for the page toward the talk group's floor control server (3GPP MCPTT,
// TS 24.380), consumes the field and writes floor_state (idle, granted, taken, denied,
// queued) with floor_talker, floor_reason, floor_position and floor_duration.
//
//   const ptt = new PushToTalk(player, schema);
//   ptt.onChange((s) => render(s));   // s: floor, talker, reason, position, remaining, pressed
//   ptt.bind(button, window);         // hold the button or the space bar
//
// The microphone's audio leaves the page only while the button is held (player send
// filter); the media gateway passes it to the group only while the floor is granted, so
// a press that waits in the queue is not heard. A short rising tone says "talk now"
// (the talk-permission tone), a low one that someone else took the floor, a falling one
// that the request was denied or the floor revoked.

import { set } from './transform.js';

// Tone shapes: [frequency Hz, duration ms] steps, quiet enough not to startle.
const TONES = {
  permission: [[880, 70], [0, 30], [1320, 90]],
  taken: [[440, 120]],
  denied: [[660, 90], [0, 30], [330, 160]],
};
const TONE_GAIN = 0.12;

/**
 * PushToTalk drives the floor fields of one Player. Options: tones (default true; false
 * keeps the page silent), AudioContext (for tests).
 */
export class PushToTalk {
  constructor(player, schema, opts = {}) {
    this.player = player;
    this.F = schema.P;
    this.opts = { tones: true, ...opts };
    this.pressed = false;
    this.fns = new Set();
    this.tones = []; // names of the tones played, oldest first (for tests and debugging)
    this.grantedAt = 0; // performance.now() when this page saw the grant
    this.last = { floor: 'idle', talker: '' };
    this.timer = null;
    this.ctx = null;
    // Only a push-to-talk call holds the microphone back; other calls send as always.
    player.setSendFilter(() => player.obj?.get(this.F.service) !== 'poc' || this.pressed);
    player.onChange(() => this.update());
  }

  /** active reports whether the player's call is a push-to-talk call that is up. */
  get active() {
    const s = this.player.status;
    return s.service === 'poc' && s.playerState === 'connected';
  }

  /** status returns the floor as the page shows it. */
  get status() {
    const g = (f) => this.player.obj?.get(f) ?? '';
    const floor = this.active ? g(this.F.floorState) || 'idle' : 'off';
    const duration = Number(g(this.F.floorDuration)) || 0;
    let remaining = 0;
    if (floor === 'granted' && duration > 0 && this.grantedAt > 0) {
      remaining = Math.max(0, Math.ceil(duration - (performance.now() - this.grantedAt) / 1000));
    }
    return {
      floor,
      talker: g(this.F.floorTalker),
      reason: g(this.F.floorReason),
      position: Number(g(this.F.floorPosition)) || 0,
      duration,
      remaining,
      pressed: this.pressed,
    };
  }

  /** onChange registers fn(status), called when the floor or the button changes. */
  onChange(fn) {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }

  /** press asks for the floor (button down). */
  async press() {
    if (this.pressed || !this.active) return;
    this.pressed = true;
    const w = this.write('request'); // first: the floor is what the user waits for
    this.emit();
    try {
      this.audio(); // a press is a user gesture: the tones may play from now on
    } catch (err) {
      console.warn('ptt: audio', err.message || err);
    }
    await w;
  }

  /** release gives the floor back or cancels the request (button up). */
  async release() {
    if (!this.pressed) return;
    this.pressed = false;
    this.emit();
    if (this.active) await this.write('release');
  }

  write(intent) {
    // A blind write: the AS adapter consumes the field, and the page's latest intent
    // is the one that counts.
    return this.player.obj.write([set(this.F.floor, intent)]).catch((err) => {
      console.warn('ptt: write', intent, err.message || err);
    });
  }

  /**
   * bind wires a button (pointer down/up, also touch) and the space bar on keyTarget
   * (not while typing in a field). It returns a function that unbinds.
   */
  bind(button, keyTarget) {
    const down = (e) => {
      e.preventDefault();
      try {
        button.setPointerCapture(e.pointerId); // the release comes even off the button
      } catch {
        // a synthetic pointer: no capture, pointerup still releases
      }
      this.press();
    };
    const up = () => this.release();
    const typing = (e) => e.target && ['INPUT', 'TEXTAREA', 'SELECT'].includes(e.target.tagName);
    const kdown = (e) => {
      if (e.code !== 'Space' || e.repeat || typing(e) || !this.active) return;
      e.preventDefault();
      this.press();
    };
    const kup = (e) => {
      if (e.code !== 'Space' || typing(e)) return;
      e.preventDefault();
      this.release();
    };
    button.addEventListener('pointerdown', down);
    button.addEventListener('pointerup', up);
    button.addEventListener('pointercancel', up);
    button.addEventListener('lostpointercapture', up);
    keyTarget.addEventListener('keydown', kdown);
    keyTarget.addEventListener('keyup', kup);
    // A page hidden while the button is held would keep the floor: let go.
    const hide = () => document.hidden && this.release();
    document.addEventListener('visibilitychange', hide);
    return () => {
      button.removeEventListener('pointerdown', down);
      button.removeEventListener('pointerup', up);
      button.removeEventListener('pointercancel', up);
      button.removeEventListener('lostpointercapture', up);
      keyTarget.removeEventListener('keydown', kdown);
      keyTarget.removeEventListener('keyup', kup);
      document.removeEventListener('visibilitychange', hide);
    };
  }

  // ---- reacting to the fields ----

  update() {
    const s = this.status;
    if (s.floor === 'off' && this.pressed) this.pressed = false;
    const prev = this.last;
    let tone = '';
    if (s.floor !== prev.floor || s.talker !== prev.talker) {
      if (s.floor === 'granted' && prev.floor !== 'granted') {
        this.grantedAt = performance.now();
        tone = 'permission';
      } else if (s.floor === 'taken' && (prev.floor !== 'taken' || s.talker !== prev.talker)) {
        tone = 'taken';
      } else if (s.floor === 'denied' || (prev.floor === 'granted' && s.reason.startsWith('revoked'))) {
        tone = 'denied';
      }
      this.last = { floor: s.floor, talker: s.talker };
    }
    // The countdown ticks while granted.
    if (s.floor === 'granted' && !this.timer) {
      this.timer = setInterval(() => this.emit(), 250);
    } else if (s.floor !== 'granted' && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
    this.emit(); // the page shows the floor first; the tone follows
    if (tone) this.tone(tone);
  }

  /** audio returns the tones' AudioContext, made on first use (null without tones). */
  audio() {
    if (!this.opts.tones) return null;
    if (!this.ctx) {
      const AC = this.opts.AudioContext ?? globalThis.AudioContext;
      this.ctx = new AC();
    }
    return this.ctx;
  }

  tone(name) {
    this.tones.push(name);
    if (!this.opts.tones) return;
    try {
      const ctx = this.audio();
      ctx.resume().catch(() => {});
      let t = ctx.currentTime + 0.01;
      for (const [hz, ms] of TONES[name]) {
        if (hz > 0) {
          const osc = ctx.createOscillator();
          const gain = ctx.createGain();
          osc.frequency.value = hz;
          gain.gain.setValueAtTime(TONE_GAIN, t);
          gain.gain.setTargetAtTime(0, t + ms / 1000 - 0.02, 0.01); // no click at the end
          osc.connect(gain).connect(ctx.destination);
          osc.start(t);
          osc.stop(t + ms / 1000);
        }
        t += ms / 1000;
      }
    } catch (err) {
      console.warn('ptt: tone', err.message || err);
    }
  }

  emit() {
    const s = this.status;
    for (const fn of this.fns) this.player.dsm.safeCall(fn, s, 'ptt');
  }

  /** close stops the countdown and the tone context. */
  close() {
    clearInterval(this.timer);
    this.timer = null;
    this.ctx?.close().catch(() => {});
  }
}

/** floorText is the line the page shows for a floor status. */
export function floorText(s) {
  switch (s.floor) {
    case 'off':
      return '–';
    case 'granted':
      return s.remaining > 0 ? `You may talk · ${s.remaining} s left` : 'You may talk';
    case 'taken':
      return `${s.talker || 'Someone'} is talking`;
    case 'queued':
      return `Queued${s.position ? ` #${s.position}` : ''}${s.talker ? ` · ${s.talker} is talking` : ''}`;
    case 'denied':
      return `Not granted${s.reason ? `: ${s.reason}` : ''}`;
    default:
      return s.pressed ? 'Asking for the floor…' : s.reason ? `Nobody is talking (${s.reason})` : 'Nobody is talking';
  }
}

/**
 * mountPushToTalk wires the page's push-to-talk card: els.form with els.group joins a
 * talk group (a poc call), els.button is held to talk, els.floor shows who talks.
 * opts.encoding() gives the codec to join with, opts.onError(err) reports a failed join.
 * It returns the PushToTalk.
 */
export function mountPushToTalk(player, schema, els, opts = {}) {
  const ptt = new PushToTalk(player, schema, opts);
  // A signed-in page tells the gateway it offers push-to-talk: the user's REGISTER then
  // carries the MCPTT feature tag, so the network routes talk group calls here.
  const user = player.dsm.user;
  if (user && schema.U.services) {
    player.dsm.write(schema.userAddress(user), [set(schema.U.services, 'mmtel poc')]).catch((err) => {
      console.warn('ptt: offer services', err.message || err);
    });
  }
  els.form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await player.join(els.group.value.trim(), { service: 'poc', encoding: opts.encoding?.() });
    } catch (err) {
      opts.onError?.(err);
    }
  });
  ptt.bind(els.button, window);
  const render = (s) => {
    els.button.disabled = s.floor === 'off';
    els.button.setAttribute('aria-pressed', String(s.pressed));
    els.button.dataset.floor = s.floor;
    els.button.textContent = s.floor === 'granted' ? 'Talking…' : s.pressed ? 'Waiting for the floor…' : 'Hold to talk';
    els.floor.dataset.floor = s.floor;
    const t = floorText(s);
    if (els.floor.textContent !== t) els.floor.textContent = t;
  };
  ptt.onChange(render);
  render(ptt.status);
  return ptt;
}
