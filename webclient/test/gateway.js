// Helpers for the node tests that run against a live gateway. TestNodeClient (Go) starts
// Redis and two gateway instances in process and passes their URLs in DSM_GATEWAY_URL and
// DSM_GATEWAY_URL2, and one more instance whose tokens live DSM_TOKEN_TTL seconds in
// DSM_SHORT_TTL_URL; it also serves /test/* endpoints that act as a Go service (a commit
// through store.Commit) and read Redis back.

import assert from 'node:assert/strict';
import { DSM } from '../dsm.js';
import { WebSocket } from './wsclient.js';

/** GW is the first gateway instance; GW2 the second (sharing the same Redis). */
export const GW = process.env.DSM_GATEWAY_URL;
export const GW2 = process.env.DSM_GATEWAY_URL2 || GW;
/** GW_SHORT_TTL is an instance of its own whose tokens live DSM_TOKEN_TTL seconds. */
export const GW_SHORT_TTL = process.env.DSM_SHORT_TTL_URL;

/** needGateway fails (never skips) when the suite runs without a gateway. */
export function needGateway() {
  assert.ok(GW, 'DSM_GATEWAY_URL is not set: run these tests through `go test ./webclient -run TestNodeClient`');
}

/** client returns a started DSM client on base (default GW) with a fast reconnect. */
export async function client(opts = {}) {
  needGateway();
  const errors = [];
  const dsm = new DSM({
    base: opts.base ?? GW,
    WebSocket,
    backoffMin: 10,
    backoffMax: 100,
    log: (level, msg) => {
      if (level === 'error') errors.push(msg);
    },
    ...opts,
  });
  dsm.listenerErrors = errors;
  await dsm.start();
  return dsm;
}

/** until polls fn until it returns a truthy value; the timeout is only a failure deadline. */
export async function until(fn, what, timeoutMs = 15000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** goCommit commits ops as a Go service would (store.Commit, blind). */
export async function goCommit(obj, ops, base = GW) {
  const res = await fetch(new URL('/test/commit', base), { method: 'POST', body: JSON.stringify({ obj, ops }) });
  const j = await res.json();
  if (j.error) throw new Error(j.error);
  return j.rev;
}

/** goRead reads an object from Redis: {rev, fields} or, with since, {rev, log}. */
export async function goRead(obj, since) {
  const u = new URL('/test/read', GW);
  u.searchParams.set('obj', obj);
  if (since !== undefined) u.searchParams.set('since', String(since));
  const res = await fetch(u);
  assert.equal(res.status, 200, `read ${obj}`);
  return res.json();
}

/** outsideWrite writes a field with a plain HSET, outside the commit path. */
export async function outsideWrite(obj, field, value) {
  const res = await fetch(new URL('/test/hset', GW), { method: 'POST', body: JSON.stringify({ Obj: obj, Field: field, Value: value }) });
  const j = await res.json();
  if (j.error) throw new Error(j.error);
}

/** settled reports whether every object of a client has nothing in flight or buffered. */
export function settled(dsm) {
  for (const o of dsm.objects.values()) {
    if (o.inflight || o.buffer.length) return false;
    if (o.subscribed && !o.synced) return false;
  }
  return dsm.state === 'open';
}
