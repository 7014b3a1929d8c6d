// MediaSession: the audio path of one call in the browser. It owns the AudioContext, the
// "dsm-media" worklet (worklet.js), the microphone stream and the WebSocket to the media
// gateway, and hands frames and packets to the player (player.js), which does the G.711
// and RTP work. Callbacks: open(), frame(Int16Array 160), packet(ArrayBuffer), stats(s),
// level({mic, out}), mic(err) (no microphone: the call goes on receive-only),
// suspended(bool) (the browser holds the sound until a click), failed(err) (err.attach is
// true when the WebSocket never opened: its URL's token may have expired).

// The media gateway's attach token lives 30 s by default, so a lost media WebSocket is
// retried a few times quickly (0.5, 1, 2 s) and then reported as failed.
const RETRIES = 3;
const RETRY_MS = 500;
// Above this many bytes waiting in the WebSocket, frames are dropped instead of queued:
// queued audio only adds delay (16 kB is about half a second of G.711 RTP).
const MAX_BUFFERED = 16_000;

export class MediaSession {
  constructor(url, opts, cb) {
    this.url = url;
    this.opts = opts;
    this.cb = cb;
    this.closed = false;
    this.ctx = null;
    this.node = null;
    this.stream = null;
    this.ws = null;
    this.tries = 0;
    this.timer = null;
    this.gain = null; // the volume
    this.volume = opts.volume ?? 1;
    this.muted = false;
    this.opened = false;
  }

  /** setVolume sets the playout volume (0 to 1.5). */
  setVolume(v) {
    this.volume = v;
    if (this.gain) this.gain.gain.value = v;
  }

  /** start sets up audio (errors are reported, the call stays up receive-only) and connects. */
  async start() {
    this.connect();
    try {
      await this.audio();
    } catch (err) {
      if (this.closed) return;
      if (err.mic) this.cb.mic?.(err.cause);
      else this.cb.failed(new Error(`audio: ${err.message || err}`));
    }
  }

  async audio() {
    const AC = this.opts.AudioContext ?? globalThis.AudioContext;
    const ctx = new AC({ latencyHint: 'interactive' });
    this.ctx = ctx;
    await ctx.audioWorklet.addModule(this.opts.workletURL ?? new URL('./worklet.js', import.meta.url));
    if (this.closed) return;
    const node = new AudioWorkletNode(ctx, 'dsm-media', {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { jitterFrames: this.opts.jitterFrames, probe: this.opts.probe === true, record: this.opts.record === true },
    });
    this.node = node;
    node.port.onmessage = (e) => {
      if (this.closed) return;
      const m = e.data;
      if (m.type === 'frame') this.cb.frame(m.pcm);
      else if (m.type === 'level') this.cb.level?.(m);
      else if (m.type === 'probe') this.cb.probe?.(m);
      else if (m.type === 'out') this.cb.out?.(m.pcm);
      else if (m.type === 'stats') this.cb.stats(m);
    };
    const gain = ctx.createGain();
    gain.gain.value = this.volume;
    this.gain = gain;
    node.connect(gain).connect(ctx.destination);
    // Resume without awaiting: without a user gesture it may wait for one, and the
    // microphone and the WebSocket need not wait with it. The page asks for a click
    // while the context stays suspended.
    ctx.onstatechange = () => !this.closed && this.cb.suspended?.(ctx.state === 'suspended');
    ctx.resume().catch(() => {});
    if (ctx.state === 'suspended') this.cb.suspended?.(true);
    const p = this.opts.processing !== false;
    const gum = this.opts.getUserMedia ?? ((c) => navigator.mediaDevices.getUserMedia(c));
    let stream;
    try {
      stream = await gum({
        audio: { echoCancellation: p, noiseSuppression: p, autoGainControl: p, channelCount: 1 },
        video: false,
      });
    } catch (err) {
      throw Object.assign(new Error('microphone'), { mic: true, cause: err });
    }
    if (this.closed) {
      stream.getTracks().forEach((t) => t.stop());
      return;
    }
    this.stream = stream;
    ctx.createMediaStreamSource(stream).connect(node);
  }

  connect() {
    if (this.closed) return;
    const WS = this.opts.WebSocket ?? globalThis.WebSocket;
    const ws = new WS(this.url);
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      this.tries = 0;
      this.opened = true;
      this.cb.open();
    };
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') this.cb.packet(e.data);
    };
    ws.onclose = (e) => {
      if (this.closed || this.ws !== ws) return;
      this.ws = null;
      if (!this.opened && this.tokenExpired()) {
        // Refused at the upgrade with an expired token (a page reloaded more than
        // MGW_TOKEN_TTL into the call): retrying the same URL cannot work.
        this.cb.failed(Object.assign(new Error('media token expired'), { attach: true }));
        return;
      }
      if (e.code === 4001 || this.tries >= RETRIES) {
        // 4001: another attach replaced this one (the call moved to another tab).
        const err = new Error(`media connection closed (${e.code}${e.reason ? ' ' + e.reason : ''})`);
        err.replaced = e.code === 4001;
        err.attach = !this.opened;
        this.cb.failed(err);
        return;
      }
      this.timer = setTimeout(() => this.connect(), RETRY_MS * 2 ** this.tries++);
    };
  }

  /** tokenExpired reports whether the URL's token (<expiry unix s>.<mac>) has expired. */
  tokenExpired() {
    return urlExpired(this.url);
  }

  canSend() {
    return this.ws !== null && this.ws.readyState === 1 && (this.ws.bufferedAmount ?? 0) < MAX_BUFFERED;
  }

  send(packet) {
    this.ws.send(packet);
  }

  /** play hands one decoded 8 kHz frame to the jitter buffer. */
  play(seq, pcm) {
    if (this.node) this.node.port.postMessage({ type: 'play', seq, pcm }, [pcm.buffer]);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = ws.onmessage = ws.onopen = null;
      try {
        ws.close(1000, 'hang up');
      } catch {
        // already closed
      }
    }
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.node) this.node.disconnect();
    if (this.ctx) this.ctx.close().catch(() => {});
  }
}

/** urlExpired reports whether a media URL's token has expired (or expires within a second). */
export function urlExpired(url) {
  try {
    const tok = new URL(url).searchParams.get('token') || '';
    const exp = Number(tok.split('.')[0]);
    return Number.isFinite(exp) && exp > 0 && exp * 1000 < Date.now() + 1000;
  } catch {
    return false;
  }
}
