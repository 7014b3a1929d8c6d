// One DSM object as a Jupiter client replica (docs/dsm-protocol.md, "Client states"):
// the server state at the last revision received, at most one op in flight, and a buffer
// of later local ops. The view is server · inflight · buffer. dsm.js owns the connection
// and routes messages here.

import { apply, check, compose, del, expect, hasExpect, set, transformServer, validate, writes } from './transform.js';

/** The three client states of the Jupiter algorithm. */
export const SYNCHRONIZED = 'synchronized';
export const AWAITING_CONFIRM = 'awaiting confirm';
export const AWAITING_WITH_BUFFER = 'awaiting with buffer';

/** DSMError is a refused write or subscription: code is the protocol's error code. */
export class DSMError extends Error {
  constructor(code, msg, obj) {
    super(`${code}${msg ? ': ' + msg : ''}${obj ? ' (' + obj + ')' : ''}`);
    this.name = 'DSMError';
    this.code = code;
    this.obj = obj;
  }
}

// Codes after which the op will never be committed: the op is dropped and rolled back.
// Other errors (rate_limited, unavailable, inflight) are transient: the op is resent.
const TRANSIENT = new Set(['rate_limited', 'unavailable', 'inflight']);
// SUB_RETRY_MS is how long after a sub refused with unavailable it is asked again.
const SUB_RETRY_MS = 500;

/**
 * DSMObject is the replica of one object. Get one from DSM.object(addr) (subscribed) or,
 * internally, for blind writes to an object the client may write but not read.
 */
export class DSMObject {
  constructor(dsm, addr, subscribed) {
    this.dsm = dsm;
    this.addr = addr;
    this.subscribed = subscribed;
    this.rev = -1; // revision of the server state; -1 before the first snapshot
    this.server = new Map();
    this.view = new Map();
    this.inflight = null; // {ops, seq, waiters, sent}
    this.buffer = []; // [{ops, waiters}]; see write()
    this.seq = 0; // last seq used on this object (1, 2, 3 ... per client and object)
    this.synced = false; // the server state is current on this connection
    this.retryTimer = null;
    this.subRetryTimer = null;
    this.changeFns = new Set();
    this.fieldFns = new Map();
    this.stateFns = new Set();
    this.errorFns = new Set();
    this.lastState = SYNCHRONIZED;
    this.ready = new Promise((resolve, reject) => {
      this.readyResolve = resolve;
      this.readyReject = reject;
    });
    this.ready.catch(() => {}); // a refusal is also reported to onError listeners
  }

  /** state is the Jupiter client state of this object. */
  get state() {
    if (!this.inflight) return SYNCHRONIZED;
    return this.buffer.length ? AWAITING_WITH_BUFFER : AWAITING_CONFIRM;
  }

  /** get returns the value of a field in the view, or undefined. */
  get(field) {
    return this.view.get(field);
  }

  /** fields returns a plain copy of the view. */
  fields() {
    return Object.fromEntries(this.view);
  }

  /** serverFields returns a plain copy of the server state (for tests and debugging). */
  serverFields() {
    return Object.fromEntries(this.server);
  }

  /** on registers fn({obj, cause, rev, changes:[{field, old, new}]}); returns an unsubscribe function. */
  on(fn) {
    this.changeFns.add(fn);
    return () => this.changeFns.delete(fn);
  }

  /** onField registers fn({obj, field, old, new, cause, rev}) for one field. */
  onField(field, fn) {
    let s = this.fieldFns.get(field);
    if (!s) this.fieldFns.set(field, (s = new Set()));
    s.add(fn);
    return () => s.delete(fn);
  }

  /** onState registers fn(state) called when the Jupiter client state changes. */
  onState(fn) {
    this.stateFns.add(fn);
    return () => this.stateFns.delete(fn);
  }

  /** onError registers fn(DSMError) for refusals that concern the object but no write. */
  onError(fn) {
    this.errorFns.add(fn);
    return () => this.errorFns.delete(fn);
  }

  /**
   * set writes fields from a plain object {field: value} (null deletes the field), after
   * the expects {field: value} (null: the field is absent).
   */
  set(values, expects) {
    const ops = [];
    for (const [f, v] of Object.entries(expects || {})) ops.push(expect(f, v));
    for (const [f, v] of Object.entries(values)) ops.push(v === null ? del(f) : set(f, v));
    return this.write(ops);
  }

  /** del deletes fields. */
  del(...fields) {
    return this.write(fields.map((f) => del(f)));
  }

  /**
   * write applies ops to the view at once and sends them. It returns a promise of the
   * revision the op was committed at; it rejects with a DSMError (and the view rolls back)
   * when the server refuses it. Expects are checked against the view first: an op whose
   * precondition fails locally is refused at once (code expect_failed) and changes nothing;
   * before the first snapshot (see ready) only the server checks expects.
   */
  write(ops) {
    ops = ops.map((o) => ({ ...o }));
    if (this.dsm.objects.get(this.addr) !== this) this.dsm.objects.set(this.addr, this); // written after close()
    const bad = validate(ops, this.dsm.limits);
    if (bad) return Promise.reject(new DSMError('bad_op', bad, this.addr));
    if (this.subscribed && this.rev >= 0) {
      const failed = check(this.view, ops);
      if (failed) {
        return Promise.reject(new DSMError('expect_failed', `${failed.field} is ${show(failed.have)}, not ${show(failed.want)} (local)`, this.addr));
      }
    }
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      const last = this.buffer[this.buffer.length - 1];
      // Unconditional writes compose into one buffered op (the doc's buffer). An op with
      // expects stays on its own, so that a failed precondition rolls back only its own op.
      const maxOps = this.dsm.limits.max_ops ?? 32;
      if (last && !hasExpect(last.ops) && !hasExpect(ops)) {
        const c = compose(last.ops, ops);
        if (c.length <= maxOps) {
          last.ops = c;
          last.waiters.push(waiter);
        } else {
          this.buffer.push({ ops, waiters: [waiter] });
        }
      } else {
        this.buffer.push({ ops, waiters: [waiter] });
      }
      if (this.subscribed) this.applyToView(writes(ops), 'local');
      this.pump();
      this.stateChanged();
    });
  }

  /** close unsubscribes. Pending writes still complete. */
  close() {
    clearTimeout(this.subRetryTimer);
    this.subRetryTimer = null;
    if (!this.subscribed) return;
    this.subscribed = false;
    this.dsm.unsubscribe(this);
  }

  // ---- protocol, called by dsm.js ----

  /** disconnected forgets the connection: the server state must be re-read, the in-flight op resent. */
  disconnected() {
    this.synced = false;
    clearTimeout(this.subRetryTimer); // the reconnection subscribes again
    this.subRetryTimer = null;
    if (this.inflight) this.inflight.sent = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** resume runs after welcome: re-subscribe, or resend at once for a blind object. */
  resume() {
    if (this.subscribed) this.dsm.send(this.subMessage());
    else this.pump();
  }

  subMessage() {
    const m = { t: 'sub', obj: this.addr, id: 'sub:' + this.addr };
    if (this.rev >= 0) m.since = this.rev;
    return m;
  }

  onSnap(rev, fields) {
    const first = this.rev < 0;
    this.server = new Map(Object.entries(fields || {}));
    this.rev = rev;
    this.recompute(first ? 'snapshot' : 'resync');
    this.onSynced();
  }

  onCatchup(rev, log) {
    for (const e of log || []) {
      if (e.rev <= this.rev) continue;
      const own = this.inflight && e.seq !== undefined && e.seq === this.inflight.seq && (e.c === undefined || e.c === this.dsm.client);
      if (own) this.onAck(e.seq, e.rev);
      else this.onRemote(e.rev, e.ops);
    }
    if (rev > this.rev) this.rev = rev; // an empty log means no change since
    this.onSynced();
  }

  onSynced() {
    this.synced = true;
    this.readyResolve(this);
    this.pump();
  }

  /** onRemoteMsg handles a remote op; one carrying our in-flight seq is that op's ack. */
  onRemoteMsg(rev, ops, seq) {
    if (seq !== undefined && this.inflight && seq === this.inflight.seq) this.onAck(seq, rev);
    else this.onRemote(rev, ops);
  }

  onRemote(rev, ops) {
    if (rev <= this.rev) return; // already have it (e.g. from a catchup)
    if (this.rev >= 0 && rev > this.rev + 1) {
      this.dsm.log('warn', `dsm: gap on ${this.addr}: rev ${rev} after ${this.rev}; catching up`);
      this.resubscribe();
      return;
    }
    apply(this.server, ops);
    this.rev = rev;
    const pending = [this.inflight?.ops, ...this.buffer.map((b) => b.ops)];
    this.applyToView(transformServer(ops, ...pending), 'remote');
  }

  onResync(rev, fields) {
    this.server = new Map(Object.entries(fields || {}));
    this.rev = rev;
    this.recompute('resync');
  }

  onAck(seq, rev) {
    const op = this.inflight;
    if (!op || op.seq !== seq) return; // the ack of a resend whose first ack we already had
    this.inflight = null;
    clearTimeout(this.retryTimer);
    if (this.subscribed && this.rev >= 0) {
      if (rev === this.rev + 1) {
        apply(this.server, op.ops);
        this.rev = rev;
      } else if (rev <= this.rev) {
        // A resend after a reconnect: the first commit is already in the snapshot we hold.
        this.recompute('remote');
      } else {
        this.dsm.log('warn', `dsm: ack of rev ${rev} on ${this.addr} after ${this.rev}; catching up`);
        this.resubscribe();
      }
    } else if (this.subscribed) {
      this.resubscribe(); // acked before the first snapshot: read it again to include the op
    }
    for (const w of op.waiters) w.resolve(rev);
    this.pump();
    this.stateChanged();
  }

  onNack(seq, code, msg, last) {
    const op = this.inflight;
    if (!op || op.seq !== seq) return;
    if (code === 'seq_reused' && Number.isSafeInteger(last)) {
      // An earlier page with this client key (a reload reusing its token; its epoch was
      // another) committed up to last: number this op after it and send it again.
      this.seq = Math.max(this.seq, last) + 1;
      op.seq = this.seq;
      op.sent = false;
      this.pump();
      return;
    }
    this.refuse(code, msg);
  }

  /** onOpError handles an error message answering the in-flight op. */
  onOpError(seq, code, msg) {
    const op = this.inflight;
    if (!op || op.seq !== seq) return;
    if (TRANSIENT.has(code)) {
      // Resend the same op with the same seq later: the token bucket refills and Redis
      // comes back; 250 ms keeps a retrying client under a few messages per second.
      op.sent = false;
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.pump();
      }, 250);
      return;
    }
    this.refuse(code, msg);
  }

  onSubError(code, msg) {
    const err = new DSMError(code, msg, this.addr);
    if (code === 'unavailable') {
      // Redis did not answer the read: the protocol asks for the sub again after 500 ms
      // (docs/dsm-protocol.md); ready waits for the snapshot that brings.
      clearTimeout(this.subRetryTimer);
      this.subRetryTimer = setTimeout(() => {
        this.subRetryTimer = null;
        if (this.subscribed) this.resubscribe();
      }, SUB_RETRY_MS);
      for (const fn of this.errorFns) this.dsm.safeCall(fn, err);
      return;
    }
    this.readyReject(err);
    if (code === 'forbidden' || code === 'too_many_subs') {
      // Refused for good: the server holds no subscription, so the object is a blind one
      // from now on. Writes waiting for a snapshot that will never come are sent and get
      // their own answers. (A bad_message such as "already subscribed" leaves the
      // subscription the server has.)
      this.subscribed = false;
      this.pump();
    }
    for (const fn of this.errorFns) this.dsm.safeCall(fn, err);
  }

  // ---- internals ----

  refuse(code, msg) {
    const op = this.inflight;
    this.inflight = null;
    clearTimeout(this.retryTimer);
    if (this.subscribed) this.recompute('rollback');
    const err = new DSMError(code, msg, this.addr);
    for (const w of op.waiters) w.reject(err);
    this.pump();
    this.stateChanged();
  }

  resubscribe() {
    this.synced = false;
    if (this.dsm.isOpen()) this.dsm.send(this.subMessage());
  }

  /** pump sends the in-flight op (again) or promotes the buffer when it may. */
  pump() {
    if (!this.inflight) {
      const next = this.buffer.shift();
      if (!next) return;
      this.inflight = { ops: next.ops, waiters: next.waiters, seq: ++this.seq, sent: false };
    }
    if (!this.dsm.isOpen() || this.retryTimer || this.inflight.sent) return;
    if (this.subscribed && !this.synced) return;
    this.inflight.sent = true;
    const m = { t: 'op', obj: this.addr, seq: this.inflight.seq, ops: this.inflight.ops, id: `op:${this.inflight.seq}:${this.addr}` };
    if (this.subscribed && this.rev >= 0) m.base = this.rev;
    this.dsm.send(m);
  }

  /** applyToView applies writes to the view and reports the fields that changed. */
  applyToView(ops, cause) {
    if (!ops || !ops.length) return;
    const changes = [];
    const seen = new Set();
    const before = new Map();
    for (const o of ops) if (!before.has(o.f)) before.set(o.f, this.view.get(o.f));
    apply(this.view, ops);
    for (const o of ops) {
      if (seen.has(o.f)) continue;
      seen.add(o.f);
      const old = before.get(o.f);
      const nu = this.view.get(o.f);
      if (old !== nu) changes.push({ field: o.f, old, new: nu });
    }
    this.emit(cause, changes);
  }

  /** recompute rebuilds the view as server · inflight · buffer and reports the difference. */
  recompute(cause) {
    const next = new Map(this.server);
    if (this.inflight) apply(next, writes(this.inflight.ops));
    for (const b of this.buffer) apply(next, writes(b.ops));
    const changes = [];
    for (const [f, old] of this.view) {
      const nu = next.get(f);
      if (old !== nu) changes.push({ field: f, old, new: nu });
    }
    for (const [f, nu] of next) if (!this.view.has(f)) changes.push({ field: f, old: undefined, new: nu });
    this.view = next;
    this.emit(cause, changes);
  }

  emit(cause, changes) {
    if (!changes.length && cause !== 'snapshot') return;
    const ev = { obj: this.addr, cause, rev: this.rev, changes };
    for (const fn of this.changeFns) this.dsm.safeCall(fn, ev);
    for (const c of changes) {
      const fns = this.fieldFns.get(c.field);
      if (!fns) continue;
      const fe = { obj: this.addr, field: c.field, old: c.old, new: c.new, cause, rev: this.rev };
      for (const fn of fns) this.dsm.safeCall(fn, fe);
    }
  }

  stateChanged() {
    const s = this.state;
    if (s === this.lastState) return;
    this.lastState = s;
    for (const fn of this.stateFns) this.dsm.safeCall(fn, s);
  }
}

function show(v) {
  return v === undefined ? 'absent' : JSON.stringify(v);
}
