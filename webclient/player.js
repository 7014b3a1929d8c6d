// The media player adapter: it drives one player object players/<client>/<media> in the
// DSM and carries the call's audio. Nothing here sends "call" commands: the adapter writes
// fields (service, remote or conference, encoding, player_state) and reacts to the fields
// the AS adapter writes (mgw_state, mgw_url, progress, sip_status, sip_reason, caller).
//
//   const player = new Player(dsm, schema);
//   await player.start();                 // subscribe, add the players index entry
//   player.onChange((s) => render(s));    // s: the player's fields plus media state
//   await player.call('sip:bob@example.com');
//   await player.dtmf('1');
//   await player.hangup();
//
// Media: once mgw_state is connected and mgw_url set, it connects a WebSocket to mgw_url,
// captures the microphone through an AudioWorklet, encodes 20 ms G.711 frames into RTP
// (one packet per binary message), and plays the received RTP through the same worklet.

import { CODECS, codecByPT, decode, encode } from './g711.js';
import { RTPSender, isRTCP, parseRTP } from './rtp.js';
import { MediaSession, urlExpired } from './media.js';
import { del, expect, set } from './transform.js';
import { parseQuality } from './callview.js';

const LIVE = new Set(['ringing', 'connecting', 'connected']);

/**
 * Player is the adapter of one player object. Options: media ('audio'), service ('mmtel'),
 * encoding ('PCMU'), processing (echo cancellation, noise suppression and automatic gain;
 * default true, false for measurements), and for tests the implementations AudioContext,
 * getUserMedia, WebSocket and workletURL.
 */
export class Player {
  constructor(dsm, schema, opts = {}) {
    this.dsm = dsm;
    this.schema = schema;
    this.F = schema.P;
    this.opts = { media: 'audio', service: schema.players.services[0], encoding: 'PCMU', processing: true, ...opts };
    this.addr = null;
    this.obj = null;
    this.media = null; // MediaSession while media flows
    this.mediaState = 'idle'; // idle | connecting | connected | failed
    this.mediaError = '';
    this.fns = new Set();
    this.stats = { sent: 0, received: 0, decoded: 0, ignored: 0, played: 0, captured: 0, underruns: 0 };
    this.tap = null; // see the packet handler in startMedia
    this.sendFilter = null; // see setSendFilter
    this.micError = null; // why the microphone is not used (the call is receive-only)
    this.suspended = false; // the browser holds the sound until a click
    this.levels = { mic: 0, out: 0 }; // peak of the microphone, RMS of what plays (0-1)
    this.jitter = 0; // RFC 3550 interarrival jitter, in 8 kHz samples
    this.transit = null;
    this.muted = false;
    this.localHold = false;
    this.volume = 1;
    this.renewing = ''; // the expired media URL a fresh one was asked for
  }

  /** setMuted stops (true) or resumes sending the microphone (silence is sent instead). */
  setMuted(on) {
    this.muted = !!on;
    this.emit();
  }

  /**
   * setHold holds the call (true) until setHold(false): the page stops sending its
   * microphone and playing, and writes hold_intent, on which the AS adapter re-INVITEs the
   * far end with a=sendonly (a=sendrecv to resume) and writes hold "local" once the far end
   * agreed (status.hold shows it).
   */
  async setHold(on) {
    const F = this.F;
    this.localHold = !!on;
    this.media?.setVolume(this.localHold ? 0 : this.volume);
    this.emit();
    if (!this.obj || !F.holdIntent || this.obj.get(F.playerState) !== 'connected') return;
    if (this.localHold === (this.obj.get(F.holdIntent) === 'hold')) return;
    await this.obj.write([this.localHold ? set(F.holdIntent, 'hold') : del(F.holdIntent)]);
  }

  /** setVolume sets the playout volume (0 to 1.5). */
  setVolume(v) {
    this.volume = Math.max(0, Math.min(1.5, Number(v) || 0));
    if (!this.localHold) this.media?.setVolume(this.volume);
    this.emit();
  }

  /**
   * setSendFilter makes the microphone's frames leave the page only while fn() is true
   * (push-to-talk: while the button is held); null sends always.
   */
  setSendFilter(fn) {
    this.sendFilter = fn;
  }

  /** start subscribes to the own player object and adds it to the players index. */
  async start() {
    if (!this.dsm.client) throw new Error('player: start the DSM client first');
    this.addr = this.schema.playerAddress(this.dsm.client, this.opts.media);
    this.obj = this.dsm.object(this.addr);
    this.obj.on(() => this.react());
    await this.obj.ready;
    await this.addToIndex();
    this.react();
    return this;
  }

  /** addToIndex writes the own entry of the players index (a blind write). */
  addToIndex() {
    return this.dsm.write(this.schema.players.index, [set(this.addr, this.opts.media)]);
  }

  /** onChange registers fn(status), called on every change of the object or the media. */
  onChange(fn) {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }

  /** status returns the call as the page shows it. */
  get status() {
    const F = this.F;
    const g = (f) => (this.obj ? this.obj.get(f) : undefined);
    return {
      player: this.addr,
      playerState: g(F.playerState) ?? 'idle',
      mgwState: g(F.mgwState) ?? '',
      mgwURL: g(F.mgwURL) ?? '',
      remote: g(F.remote) ?? '',
      conference: g(F.conference) ?? '',
      service: g(F.service) ?? '',
      encoding: g(F.encoding) ?? '',
      progress: g(F.progress) ?? '',
      sipStatus: g(F.sipStatus) ?? '',
      sipReason: g(F.sipReason) ?? '',
      caller: g(F.caller) ?? '',
      hold: g(F.hold) ?? '',
      holdIntent: (F.holdIntent && g(F.holdIntent)) ?? '',
      media: this.mediaState,
      mediaError: this.mediaError,
      micError: this.micError,
      suspended: this.suspended,
      levels: { ...this.levels },
      quality: {
        lost: this.stats.lost ?? 0,
        concealed: this.stats.concealed ?? 0,
        jitterMs: this.jitter / 8,
        bufferMs: (this.stats.depth ?? 0) * 20,
        late: this.stats.late ?? 0,
      },
      network: parseQuality(F.mediaQuality && g(F.mediaQuality)),
      muted: this.muted,
      localHold: this.localHold,
      volume: this.volume,
      stats: { ...this.stats },
    };
  }

  /** busy reports whether a call is ringing, being set up or up. */
  get busy() {
    return LIVE.has(this.obj?.get(this.F.playerState));
  }

  /** call dials a SIP URI (or tel URI) through the AS adapter. */
  call(remote, opts = {}) {
    return this.dial({ [this.F.remote]: remote }, [this.F.conference], opts);
  }

  /** join joins a conference by its id. */
  join(conference, opts = {}) {
    return this.dial({ [this.F.conference]: conference }, [this.F.remote], opts);
  }

  async dial(target, clear, opts) {
    const F = this.F;
    const encoding = opts.encoding ?? this.opts.encoding;
    if (!CODECS[encoding]) throw new Error(`player: unknown encoding ${encoding}`);
    const service = opts.service ?? this.opts.service;
    // set() would turn anything into a string; a missing target or service is a caller's
    // mistake to report, not a value to write.
    for (const [f, v] of Object.entries({ ...target, [F.service]: service })) {
      if (typeof v !== 'string') throw new Error(`player: ${f}: want a string, have ${typeof v}`);
    }
    const cur = this.obj.get(F.playerState);
    if (LIVE.has(cur)) throw new Error(`player: a call is already ${cur}`);
    await this.addToIndex();
    const ops = [expect(F.playerState, cur)];
    // Clear what the previous call left, so nothing stale is shown or acted on.
    const floor = [F.floor, F.floorState, F.floorTalker, F.floorReason, F.floorPosition, F.floorDuration];
    for (const f of [F.mgwState, F.mgwURL, F.progress, F.sipStatus, F.sipReason, F.caller, F.callID, F.dtmf, F.hold, F.holdIntent, ...floor, ...clear].filter(Boolean)) {
      ops.push(del(f));
    }
    ops.push(set(F.service, service));
    ops.push(set(F.encoding, encoding));
    for (const [f, v] of Object.entries(target)) ops.push(set(f, v));
    ops.push(set(F.playerState, 'connecting'));
    this.mediaError = '';
    return this.obj.write(ops);
  }

  /** answer accepts a ringing incoming call. */
  answer(opts = {}) {
    const F = this.F;
    const encoding = opts.encoding ?? this.obj.get(F.encoding) ?? this.opts.encoding;
    return this.obj.write([expect(F.playerState, 'ringing'), set(F.encoding, encoding), set(F.playerState, 'connecting')]);
  }

  /** reject declines a ringing incoming call. */
  reject() {
    const F = this.F;
    return this.obj.write([expect(F.playerState, 'ringing'), set(F.playerState, 'disconnected')]);
  }

  /** hangup ends the call in any live state (CANCEL or BYE is the AS adapter's part). */
  async hangup() {
    const F = this.F;
    this.stopMedia();
    for (let i = 0; i < 3; i++) {
      const cur = this.obj.get(F.playerState);
      if (!LIVE.has(cur)) return;
      try {
        return await this.obj.write([expect(F.playerState, cur), set(F.playerState, 'disconnected')]);
      } catch (err) {
        // The state moved on under us (e.g. connecting → connected): try again on the new one.
        if (err.code !== 'expect_failed') throw err;
      }
    }
    throw new Error('player: hang up kept racing with state changes');
  }

  /**
   * dtmf sends digits (0-9 * # A-D). The AS adapter sends what the dtmf field holds and
   * then deletes it if unchanged; digits not yet consumed are appended to, so a quick
   * sequence loses nothing and a repeated digit is sent again.
   */
  async dtmf(digits) {
    const F = this.F;
    if (!/^[0-9*#A-Da-d]{1,64}$/.test(digits)) throw new Error(`player: bad DTMF digits ${JSON.stringify(digits)}`);
    for (let i = 0; i < 5; i++) {
      const pending = this.obj.get(F.dtmf);
      // Expect what is pending (absent or not yet consumed) and append to it.
      const ops = [expect(F.dtmf, pending), set(F.dtmf, ((pending ?? '') + digits.toUpperCase()).slice(-64))];
      try {
        return await this.obj.write(ops);
      } catch (err) {
        if (err.code !== 'expect_failed') throw err; // consumed meanwhile: append to what is there now
      }
    }
    throw new Error('player: DTMF kept racing with the AS adapter');
  }

  /** close stops media and unsubscribes (the object and its index entry stay). */
  close() {
    this.stopMedia();
    this.obj?.close();
  }

  // ---- reacting to the fields ----

  react() {
    const F = this.F;
    const ps = this.obj.get(F.playerState);
    const ms = this.obj.get(F.mgwState);
    const url = this.obj.get(F.mgwURL);
    // A page reloaded during a held call holds it again (hold_intent is in the DSM).
    if (ps === 'connected' && F.holdIntent && this.obj.get(F.holdIntent) === 'hold') this.localHold = true;
    const wantMedia = (ps === 'connecting' || ps === 'connected') && ms === 'connected' && url;
    if (wantMedia && (!this.media || this.media.url !== url)) {
      // A URL whose token expired (the page came back to a call after MGW_TOKEN_TTL)
      // cannot attach: ask the AS adapter for a fresh one instead (asadapter/call_media.go).
      if (urlExpired(url)) this.renewURL(url);
      else this.startMedia(url);
    } else if (!wantMedia && this.media) this.stopMedia();
    if (!LIVE.has(ps)) {
      this.micError = null;
      this.localHold = false;
      this.muted = false;
    }
    this.emit();
  }

  /** renewURL deletes an unusable media URL so that the AS adapter writes a fresh one. */
  renewURL(url) {
    if (this.renewing === url) return;
    this.renewing = url;
    this.stopMedia();
    this.setMedia('connecting');
    this.obj.write([expect(this.F.mgwURL, url), del(this.F.mgwURL)]).catch(() => {}); // changed meanwhile: react() sees it
  }

  startMedia(url) {
    this.stopMedia();
    const encoding = this.obj.get(this.F.encoding) || this.opts.encoding;
    const codec = CODECS[encoding] ? encoding : 'PCMU';
    const sender = new RTPSender(CODECS[codec].pt);
    this.setMedia('connecting');
    const m = new MediaSession(url, this.opts, {
      open: () => {
        this.setMedia('connected');
        if (this.obj.get(this.F.playerState) === 'connecting') {
          this.obj
            .write([expect(this.F.playerState, 'connecting'), set(this.F.playerState, 'connected')])
            .catch(() => {}); // hung up meanwhile: nothing to do
        }
      },
      frame: (pcm) => {
        if (!m.canSend() || (this.sendFilter && !this.sendFilter())) return;
        // Muted or held: silence keeps the stream (and the far end's jitter buffer) going.
        if (this.muted || this.localHold) pcm.fill(0);
        m.send(sender.packet(encode(codec, pcm), pcm.length));
        this.stats.sent++;
      },
      level: (l) => {
        this.levels = { mic: this.muted || this.localHold ? 0 : l.mic, out: l.out };
        this.emit();
      },
      mic: (err) => {
        this.micError = err;
        this.emit();
      },
      probe: (p) => this.probe?.(p), // set by the latency benchmark
      out: (pcm) => this.outTap?.(pcm), // what is played, with opts.record (tests)
      suspended: (on) => {
        this.suspended = on;
        this.emit();
      },
      packet: (data) => {
        const b = new Uint8Array(data);
        this.stats.received++;
        if (isRTCP(b)) return;
        const p = parseRTP(b);
        const name = p && codecByPT(p.pt);
        if (!name) {
          this.stats.ignored++; // telephone-event, comfort noise or garbage
          return;
        }
        this.stats.decoded++;
        // RFC 3550 section 6.4.1 interarrival jitter, in timestamp units (8 kHz).
        const transit = (performance.now() * 8) - p.timestamp;
        if (this.transit !== null) {
          const d = Math.abs(transit - this.transit);
          if (d < 80000) this.jitter += (d - this.jitter) / 16; // a jump of 10 s is a new stream, not jitter
        }
        this.transit = transit;
        const pcm = decode(name, p.payload);
        // tap(pcm, seq), when set, sees each received frame before the worklet takes its
        // buffer (copy what you keep): a level meter, or a test listening to the call.
        this.tap?.(pcm, p.seq);
        m.play(p.seq, pcm);
      },
      stats: (s) => {
        for (const k of ['played', 'captured', 'underruns', 'lost', 'concealed', 'depth', 'late', 'overflow', 'drained', 'targetMs']) this.stats[k] = s[k];
        this.emit();
      },
      failed: (err) => {
        if (err.attach && this.media === m && urlExpired(url)) {
          this.renewURL(url);
          return;
        }
        this.mediaError = err.replaced ? 'replaced' : err.message || String(err);
        this.setMedia('failed');
      },
    });
    this.stats = { sent: 0, received: 0, decoded: 0, ignored: 0, played: 0, captured: 0, underruns: 0 };
    this.levels = { mic: 0, out: 0 };
    m.setVolume(this.localHold ? 0 : this.volume);
    this.jitter = 0;
    this.transit = null;
    this.renewing = '';
    this.media = m;
    m.start();
  }

  stopMedia() {
    if (!this.media) return;
    const m = this.media;
    this.media = null;
    m.close();
    this.setMedia('idle');
  }

  setMedia(s) {
    if (this.mediaState === s) return;
    this.mediaState = s;
    this.emit();
  }

  emit() {
    const s = this.status;
    for (const fn of this.fns) this.dsm.safeCall(fn, s, 'player');
  }
}
