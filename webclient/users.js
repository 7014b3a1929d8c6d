// The user adapter: watches the users structure of the DSM and exposes it to the page.
//
//   users                           the users index: one field per user, value = display name
//   users/<user>                    registration state, SIP URI, the conferences the user may join
//   users/<user>/conf/<id>          live participant list: one field per participant entity,
//                                   value = JSON {display, status} (names from the schema)
//
// The AS adapter writes all of it (REGISTER and RFC 4575 conference state) except the
// conference list of users/<user>, which the user's own page may write (watch, unwatch): the
// adapter subscribes to what it lists while the user is registered. Conference objects are
// subscribed and dropped as the list changes.

import { del, expect, set } from './transform.js';

/**
 * Users watches one user (the session's) and the users index. onChange(fn) reports a
 * snapshot {user, name, sipURI, registration, registrationError, conferences: [{id,
 * participants: [{entity, display, status}]}], directory: [{user, name}]}.
 */
export class Users {
  constructor(dsm, schema, { user } = {}) {
    this.dsm = dsm;
    this.schema = schema;
    this.user = user ?? null;
    this.index = null;
    this.me = null;
    this.confs = new Map(); // conference id → DSMObject
    this.fns = new Set();
    this.stops = [];
  }

  /** start subscribes and resolves once the first snapshots are in. */
  async start() {
    this.user = this.user ?? this.dsm.user;
    this.index = this.dsm.object(this.schema.users.index);
    this.stops.push(this.index.on(() => this.emit()));
    const waits = [this.index.ready];
    if (this.user) {
      this.me = this.dsm.object(this.schema.userAddress(this.user));
      this.stops.push(this.me.on(() => this.syncConferences()));
      waits.push(this.me.ready);
    }
    await Promise.all(waits);
    this.syncConferences();
    await Promise.all([...this.confs.values()].map((o) => o.ready.catch(() => {})));
    this.emit();
    return this;
  }

  /** onChange registers fn(snapshot). */
  onChange(fn) {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }

  /** conferenceIDs lists the conferences the user may join (space-separated in the DSM). */
  conferenceIDs() {
    const v = this.me?.get(this.schema.U.conferences) ?? '';
    return v.split(/\s+/).filter(Boolean);
  }

  /**
   * watch adds a conference to the user's list (the adapter subscribes to it and fills its
   * participant list); it resolves true if it added it, false if it was listed already.
   */
  watch(id) {
    // One address segment (it names users/<user>/conf/<id>) and no white space (the list
    // is space-separated).
    if (typeof id !== 'string' || !/^[^\s/]{1,200}$/.test(id)) throw new Error(`users: bad conference id ${JSON.stringify(id)}`);
    return this.editConferences((ids) => (ids.includes(id) ? null : [...ids, id]));
  }

  /** unwatch removes a conference from the user's list (the adapter unsubscribes). */
  unwatch(id) {
    return this.editConferences((ids) => (ids.includes(id) ? ids.filter((x) => x !== id) : null));
  }

  // editConferences writes edit(ids) as the conference list, expecting the list it edited
  // (another tab of the same user may write it too); null from edit writes nothing.
  async editConferences(edit) {
    if (!this.me) throw new Error('users: not signed in');
    const U = this.schema.U;
    for (let i = 0; i < 5; i++) {
      const cur = this.me.get(U.conferences);
      const next = edit(this.conferenceIDs());
      if (next === null) return false;
      try {
        await this.me.write([expect(U.conferences, cur), set(U.conferences, next.join(' '))]);
        return true;
      } catch (err) {
        if (err.code !== 'expect_failed') throw err; // changed meanwhile: edit the new list
      }
    }
    throw new Error('users: the conference list kept changing');
  }

  /**
   * signIn asks the gateway to register the user with the network (demo sign-in: the page
   * writes its sign_in field at once and again every refresh seconds, while it stays; the
   * registration ends one session lifetime after the last write). It returns a function
   * that stops the refreshes.
   */
  signIn(refreshSeconds) {
    if (!this.me) throw new Error('users: not signed in');
    const write = () => this.me.write([set(this.schema.U.signIn, Date.now())]).catch((err) => console.warn('users: sign-in:', err.message));
    write();
    const timer = setInterval(write, refreshSeconds * 1000);
    this.stops.push(() => clearInterval(timer));
    return () => clearInterval(timer);
  }

  /** signOut ends the registration of the demo sign-in (the gateway un-registers). */
  async signOut() {
    if (!this.me) return;
    await this.me.write([del(this.schema.U.signIn)]);
  }

  /** participants returns the parsed participant list of one conference. */
  participants(id) {
    const o = this.confs.get(id);
    if (!o) return [];
    const C = this.schema.C;
    const out = [];
    for (const [entity, raw] of Object.entries(o.fields())) {
      let v = {};
      try {
        v = JSON.parse(raw);
      } catch {
        v = { [C.display]: raw }; // a plain display name
      }
      out.push({ entity, display: String(v[C.display] ?? entity), status: String(v[C.status] ?? '') });
    }
    return out.sort((a, b) => a.display.localeCompare(b.display) || a.entity.localeCompare(b.entity));
  }

  /** snapshot returns the current state for the page. */
  snapshot() {
    const U = this.schema.U;
    const g = (f) => this.me?.get(f) ?? '';
    const directory = this.index
      ? Object.entries(this.index.fields()).map(([user, name]) => ({ user, name })).sort((a, b) => a.user.localeCompare(b.user))
      : [];
    return {
      user: this.user ?? '',
      name: g(U.name),
      sipURI: g(U.sipURI),
      registration: g(U.registration) || 'unregistered',
      registrationError: g(U.registrationError),
      conferences: this.conferenceIDs().map((id) => ({ id, participants: this.participants(id) })),
      directory,
    };
  }

  /** close unsubscribes everything. */
  close() {
    for (const s of this.stops.splice(0)) s();
    for (const o of this.confs.values()) o.close();
    this.confs.clear();
    this.index?.close();
    this.me?.close();
  }

  syncConferences() {
    if (!this.user) return;
    const want = new Set(this.conferenceIDs());
    for (const [id, o] of this.confs) {
      if (!want.has(id)) {
        o.close();
        this.confs.delete(id);
      }
    }
    for (const id of want) {
      if (this.confs.has(id)) continue;
      const o = this.dsm.object(this.schema.conferenceAddress(this.user, id));
      o.on(() => this.emit());
      this.confs.set(id, o);
    }
    this.emit();
  }

  emit() {
    const s = this.snapshot();
    for (const fn of this.fns) this.dsm.safeCall(fn, s, 'users');
  }
}
