// The page's session: a client key made by the server and a signed, expiring token bound
// to it (docs/dsm-protocol.md, "Session"). GET /session gives one; GET /session?refresh=T
// renews it before it expires, keeping the client key.

/** SESSION_PATH is where the gateway hands out sessions. */
export const SESSION_PATH = '/session';

/**
 * Session fetches and renews the page's session. onRenew(session) is called after every
 * successful fetch; onLost(err) when the token expired and could not be renewed.
 */
export class Session {
  constructor({ base, user, fetchImpl, onRenew, onLost, log, store }) {
    this.base = base;
    this.user = user;
    this.fetch = fetchImpl;
    this.onRenew = onRenew || (() => {});
    this.onLost = onLost || (() => {});
    this.log = log || (() => {});
    this.current = null; // {client, token, expires, user}
    this.timer = null;
    this.closed = false;
    // store ({load(), save(s)}) keeps the session across reloads of the page: a page that
    // comes back keeps its client key, so its player object and its call are still its own.
    this.store = store ?? null;
    const kept = this.store?.load();
    if (kept && typeof kept.client === 'string' && typeof kept.token === 'string' &&
        kept.expires > Date.now() / 1000 + 5 && (kept.user ?? undefined) === (user ?? undefined)) {
      this.current = kept;
    }
  }

  /** get returns a valid session, fetching or renewing one when needed. */
  async get() {
    const now = Date.now() / 1000;
    if (this.current && this.current.expires > now + 1) {
      if (!this.timer && !this.closed) this.schedule(); // a kept session: renew it in time
      return this.current;
    }
    if (this.current) {
      try {
        return await this.renew();
      } catch (err) {
        // An expired token cannot be renewed (401): the client key is gone with it, and a
        // new session would be another client, so the page must start over.
        if (err.status === 401) this.onLost(err);
        throw err;
      }
    }
    return this.load(this.url());
  }

  /** renew asks for a fresh token for the current client key. */
  async renew() {
    const u = this.url();
    u.searchParams.set('refresh', this.current.token);
    return this.load(u);
  }

  url() {
    const u = new URL(SESSION_PATH, this.base);
    if (this.user) u.searchParams.set('user', this.user);
    return u;
  }

  async load(url) {
    const res = await this.fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) {
      let msg = '';
      try {
        msg = (await res.text()).slice(0, 200);
      } catch {
        // the status is enough
      }
      const err = new Error(`session: GET ${url.pathname}: HTTP ${res.status} ${msg}`.trim());
      err.status = res.status;
      err.body = msg.trim();
      throw err;
    }
    const s = await res.json();
    if (typeof s.client !== 'string' || typeof s.token !== 'string' || typeof s.expires !== 'number') {
      throw new Error('session: malformed answer (want client, token, expires)');
    }
    if (this.current && this.current.client !== s.client) {
      this.log('warn', `session: renewal changed the client key from ${this.current.client} to ${s.client}`);
    }
    this.current = s;
    this.store?.save(s);
    this.schedule();
    this.onRenew(s);
    return s;
  }

  /**
   * schedule renews the token before it expires: a fifth of its lifetime early, at most a
   * minute early (a 12 h token is renewed 1 min before expiry; a 10 s test token 2 s before).
   */
  schedule() {
    clearTimeout(this.timer);
    if (this.closed) return;
    const now = Date.now();
    const exp = this.current.expires * 1000;
    const ttl = Math.max(0, exp - now);
    const at = exp - Math.min(60_000, ttl / 5);
    this.timer = setTimeout(() => this.autoRenew(), Math.max(0, at - now));
  }

  async autoRenew() {
    if (this.closed) return;
    try {
      await this.renew();
    } catch (err) {
      if (Date.now() >= this.current.expires * 1000) {
        this.onLost(err);
        return;
      }
      // Try again in 5 s: a gateway restart or a network blip is usually over by then, and
      // the token is still valid meanwhile.
      this.log('warn', `session: renewal failed, retrying: ${err.message}`);
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.autoRenew(), 5000);
    }
  }

  /** resume re-enables renewal after close (a restarted client). */
  resume() {
    this.closed = false;
    if (this.current) this.schedule();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
