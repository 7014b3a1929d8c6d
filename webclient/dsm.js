// The browser's DSM client: the Jupiter client of docs/dsm-protocol.md over one
// WebSocket to /dsm, with automatic reconnect and resume. Plain ES module, no build step.
//
//   const dsm = new DSM({ user: 'alice' });
//   await dsm.start();                       // session, connect, hello → welcome
//   const p = dsm.object(`players/${dsm.client}/audio`);
//   p.onField('player_state', (e) => console.log(e.old, '→', e.new, e.cause));
//   await p.ready;                           // first snapshot
//   await p.set({ player_state: 'connecting' });
//   await dsm.write('players', [set(p.addr, 'audio')]); // blind write (set from transform.js)
//
// Per object, dsm.js keeps the server state, one op in flight and a buffer (object.js);
// the view is server · inflight · buffer. After a reconnect it says hello again,
// re-subscribes with since=<rev> and resends the in-flight op with the same seq, which
// the server never applies twice.

import { DSMError, DSMObject } from './object.js';
import { Session } from './session.js';

export { DSMError } from './object.js';
export { SYNCHRONIZED, AWAITING_CONFIRM, AWAITING_WITH_BUFFER } from './object.js';

/** Connection states reported to onConnection listeners. */
export const CONNECTING = 'connecting';
export const OPEN = 'open';
export const CLOSED = 'closed';

const DEFAULTS = {
  path: '/dsm',
  // Reconnect backoff: start at 250 ms (a dropped connection usually comes back at once),
  // double up to 10 s (a gateway restart takes seconds; more would leave the page stale),
  // with jitter so that thousands of pages do not return in the same instant.
  backoffMin: 250,
  backoffMax: 10_000,
  // A ping every 20 s keeps proxies with 60 s idle timeouts from cutting the socket; no
  // message at all for 45 s means a half-open connection, which is then dropped.
  pingInterval: 20_000,
  deadAfter: 45_000,
};

/**
 * DSM is one page's connection to the shared memory. Options: base (the gateway's URL;
 * default location.href), user (bind a user to the session), path ('/dsm'),
 * WebSocket and fetch implementations (default the globals), session (an async function
 * returning {client, token, expires}, instead of GET /session), store ({load(), save(s)}:
 * keeps the session across reloads, e.g. in sessionStorage), log(level, msg).
 */
export class DSM {
  constructor(opts = {}) {
    this.opts = { ...DEFAULTS, ...opts };
    this.base = opts.base ?? globalThis.location?.href;
    if (!this.base) throw new Error('dsm: no base URL (pass opts.base outside a browser)');
    this.WS = opts.WebSocket ?? globalThis.WebSocket;
    if (!this.WS) throw new Error('dsm: no WebSocket implementation');
    this.logFn = opts.log ?? ((level, msg) => (level === 'debug' ? undefined : console[level === 'warn' ? 'warn' : 'error'](msg)));
    this.session = opts.session
      ? { get: opts.session, close() {} }
      : new Session({
          base: this.base,
          user: opts.user,
          fetchImpl: opts.fetch ?? globalThis.fetch.bind(globalThis),
          log: (l, m) => this.log(l, m),
          store: opts.store,
          onLost: (err) => this.fail(new DSMError('bad_token', err.message)),
        });
    // The epoch names this page load among the pages that use the same client key over
    // time (a reload that keeps its token): seqs deduplicate within it only, and the
    // server refuses a seq an earlier epoch used with seq_reused (docs/dsm-protocol.md).
    this.epoch = opts.epoch ?? newEpoch();
    this.objects = new Map(); // addr → DSMObject
    this.limits = {};
    this.client = null;
    this.user = null;
    this.instance = null;
    this.state = CLOSED;
    this.ws = null;
    this.welcomed = false;
    this.stopped = false;
    this.attempts = 0;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.lastHeard = 0;
    this.pingSeq = 0;
    this.connectionFns = new Set();
    this.errorFns = new Set();
    this.welcomeFns = new Set();
    this.readyWaiters = [];
    // problem is why the page is not connected, for the page to say ({kind: 'session',
    // status, message} when GET /session failed, {kind: 'socket', code, neverOpened} when
    // the WebSocket closed, {kind: 'token'} when the session is gone), null when connected.
    this.problem = null;
  }

  /** start connects and resolves on the first welcome (rejects if the session cannot be had). */
  start() {
    this.stopped = false;
    this.session.resume?.();
    const p = new Promise((resolve, reject) => this.readyWaiters.push({ resolve, reject }));
    this.connect();
    return p;
  }

  /** close disconnects for good: no reconnect; pending writes stay pending. */
  close() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.pingTimer);
    this.session.close();
    for (const o of this.objects.values()) o.disconnected();
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      detach(ws);
      try {
        ws.close(1000, 'page closed');
      } catch {
        // already closed
      }
    }
    this.setState(CLOSED);
  }

  /**
   * drop closes the current socket as a network failure would; the client reconnects and
   * resumes. Tests use it; a page may use it after a network change.
   */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    // A test socket may offer terminate() (drop TCP without a close handshake), closer to
    // a real network failure than close().
    if (typeof ws.terminate === 'function') {
      detach(ws);
      ws.terminate();
    }
    this.lost('dropped');
  }

  /** object returns the subscribed replica of addr (one per address). */
  object(addr) {
    let o = this.objects.get(addr);
    if (o && o.subscribed) return o;
    if (!o) {
      o = new DSMObject(this, addr, true);
      this.objects.set(addr, o);
    } else {
      o.subscribed = true; // it held blind writes so far
    }
    if (this.isOpen()) this.send(o.subMessage());
    return o;
  }

  /**
   * write applies ops to addr: through the replica when subscribed, else as a blind write
   * (no base, no local view), as for the own entry of the players index. It resolves with
   * the committed revision.
   */
  write(addr, ops) {
    let o = this.objects.get(addr);
    if (!o) {
      o = new DSMObject(this, addr, false);
      this.objects.set(addr, o);
    }
    return o.write(ops);
  }

  /** onConnection registers fn(state) for connecting / open / closed. */
  onConnection(fn) {
    this.connectionFns.add(fn);
    return () => this.connectionFns.delete(fn);
  }

  /** onError registers fn(DSMError) for errors no write or subscription owns. */
  onError(fn) {
    this.errorFns.add(fn);
    return () => this.errorFns.delete(fn);
  }

  /** onWelcome registers fn(welcome) called after every (re)connect. */
  onWelcome(fn) {
    this.welcomeFns.add(fn);
    return () => this.welcomeFns.delete(fn);
  }

  // ---- connection ----

  isOpen() {
    return this.welcomed && this.ws !== null;
  }

  async connect() {
    if (this.stopped) return;
    this.setState(CONNECTING);
    let s;
    try {
      s = await this.session.get();
    } catch (err) {
      this.log('warn', `dsm: ${err.message}`);
      this.setProblem({ kind: 'session', status: err.status ?? 0, message: err.body ?? '' });
      if (!this.stopped) this.retry();
      return;
    }
    if (this.stopped) return;
    const url = new URL(this.opts.path, this.base);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new this.WS(url.href);
    } catch (err) {
      this.log('warn', `dsm: connect ${url.href}: ${err.message}`);
      this.retry();
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.lastHeard = Date.now();
      this.sendRaw({ t: 'hello', token: s.token, epoch: this.epoch });
    };
    ws.onmessage = (ev) => this.receive(ev.data);
    ws.onerror = () => {}; // onclose follows and handles it
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      if (ev.code === 4001) {
        // bad_token: the next attempt fetches a fresh session first.
        this.session.current && (this.session.current.expires = 0);
      }
      // A WebSocket refused at the upgrade (a 403 from the gateway's Origin check or a
      // proxy) closes without ever opening: the page says so instead of "reconnecting".
      this.setProblem({ kind: 'socket', code: ev.code, neverOpened: !opened });
      this.lost(`closed ${ev.code} ${ev.reason || ''}`.trim());
    };
  }

  lost(why) {
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    clearInterval(this.pingTimer);
    if (ws) {
      detach(ws);
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    for (const o of this.objects.values()) o.disconnected();
    this.log('debug', `dsm: connection lost (${why})`);
    if (!this.stopped) this.retry();
  }

  retry() {
    this.setState(CONNECTING);
    clearTimeout(this.reconnectTimer);
    const d = Math.min(this.opts.backoffMax, this.opts.backoffMin * 2 ** this.attempts);
    this.attempts = Math.min(this.attempts + 1, 16);
    this.reconnectTimer = setTimeout(() => this.connect(), d / 2 + (Math.random() * d) / 2);
  }

  fail(err) {
    this.setProblem({ kind: 'token', message: err.message });
    for (const fn of this.errorFns) this.safeCall(fn, err);
    for (const w of this.readyWaiters.splice(0)) w.reject(err);
    this.close();
  }

  send(m) {
    if (this.isOpen()) this.sendRaw(m);
  }

  sendRaw(m) {
    try {
      this.ws.send(JSON.stringify(m));
    } catch (err) {
      this.log('warn', `dsm: send: ${err.message}`);
    }
  }

  receive(data) {
    this.lastHeard = Date.now();
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      this.log('warn', 'dsm: server sent a frame that is not JSON');
      return;
    }
    const o = m.obj !== undefined ? this.objects.get(m.obj) : undefined;
    switch (m.t) {
      case 'welcome':
        return this.onWelcomeMsg(m);
      case 'snap':
        return o && o.subscribed && o.onSnap(m.rev, m.fields);
      case 'catchup':
        return o && o.subscribed && o.onCatchup(m.rev, m.log);
      case 'op':
        return o && o.subscribed && o.synced && o.onRemoteMsg(m.rev, m.ops, m.seq);
      case 'resync':
        return o && o.subscribed && o.onResync(m.rev, m.fields);
      case 'ack':
        return o && o.onAck(m.seq, m.rev);
      case 'nack':
        return o && o.onNack(m.seq, m.code, m.msg, m.last);
      case 'error':
        return this.onErrorMsg(m);
      case 'pong':
      case 'unsubbed':
        return;
      default:
        this.log('warn', `dsm: unknown message type ${m.t}`);
    }
  }

  onWelcomeMsg(m) {
    this.welcomed = true;
    this.attempts = 0;
    this.client = m.client;
    this.user = m.user ?? null;
    this.instance = m.instance ?? null;
    this.limits = m.limits ?? {};
    this.problem = null;
    this.setState(OPEN);
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.ping(), this.opts.pingInterval);
    for (const o of this.objects.values()) o.resume();
    for (const fn of this.welcomeFns) this.safeCall(fn, m);
    for (const w of this.readyWaiters.splice(0)) w.resolve(this);
  }

  onErrorMsg(m) {
    const id = typeof m.id === 'string' ? m.id : '';
    const err = new DSMError(m.code, m.msg, m.obj);
    if (id.startsWith('op:')) {
      const i = id.indexOf(':', 3);
      const seq = Number(id.slice(3, i));
      const o = this.objects.get(id.slice(i + 1));
      if (o) return o.onOpError(seq, m.code, m.msg);
    } else if (id.startsWith('sub:')) {
      const o = this.objects.get(id.slice(4));
      if (o) return o.onSubError(m.code, m.msg);
    }
    if (m.code === 'bad_token' || m.code === 'not_authenticated') this.log('warn', `dsm: ${err.message}`);
    for (const fn of this.errorFns) this.safeCall(fn, err);
  }

  ping() {
    if (!this.ws) return;
    if (Date.now() - this.lastHeard > this.opts.deadAfter) {
      this.lost('no answer to pings');
      return;
    }
    this.send({ t: 'ping', id: 'p' + ++this.pingSeq });
  }

  unsubscribe(o) {
    this.send({ t: 'unsub', obj: o.addr });
    o.synced = false;
    if (!o.inflight && !o.buffer.length) this.objects.delete(o.addr);
  }

  // setProblem records why the page is not connected and tells the connection listeners.
  setProblem(p) {
    this.problem = p;
    for (const fn of this.connectionFns) this.safeCall(fn, this.state);
  }

  setState(s) {
    if (s === this.state) return;
    this.state = s;
    for (const fn of this.connectionFns) this.safeCall(fn, s);
  }

  /**
   * safeCall calls the listener fn(arg) for this client and the adapters built on it
   * (who names the caller in the log). A listener that throws is logged and does not keep
   * the next listeners from running, nor break the client.
   */
  safeCall(fn, arg, who = 'dsm') {
    try {
      fn(arg);
    } catch (err) {
      this.log('error', `${who}: listener failed: ${err && err.stack ? err.stack : err}`);
    }
  }

  log(level, msg) {
    try {
      this.logFn(level, msg);
    } catch {
      // logging must never break the client
    }
  }
}

/** newEpoch returns 96 random bits in base64url. */
function newEpoch() {
  const b = new Uint8Array(12);
  if (globalThis.crypto?.getRandomValues) globalThis.crypto.getRandomValues(b);
  else for (let i = 0; i < b.length; i++) b[i] = Math.floor(Math.random() * 256);
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function detach(ws) {
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
}
