// The transform rules of docs/dsm-protocol.md ("Transform (Jupiter)"), the same as
// store/transform.go. An op is an array of elements {o:"set"|"del"|"expect", f, v?}.
//
//   transform(c, s) = c
//   transform(s, c) = s without the elements on fields that c sets or deletes,
//                     and without expects (a committed op carries no condition)
//
// The tie-break is "the op ordered later by the server wins": a client's pending op is
// always ordered after every server op it has not seen yet. A Go test runs the same
// vectors through store.TransformServer and this module and compares the results.

/** transformClient returns transform(c, s): the client op as the server applies it. */
export function transformClient(c, _s) {
  return c;
}

/**
 * transformServer returns transform(s, pending...): the committed server op s as a replica
 * applies it on top of its pending local ops (in flight, then buffered). Elements of s on a
 * field that a pending op sets or deletes are dropped, as are expects. It returns null when
 * nothing remains (Go returns nil).
 */
export function transformServer(s, ...pending) {
  const touched = new Set();
  for (const p of pending) {
    if (!p) continue;
    for (const o of p) {
      if (o.o !== 'expect') touched.add(o.f);
    }
  }
  const out = [];
  for (const o of s) {
    if (o.o === 'expect' || touched.has(o.f)) continue;
    out.push(o);
  }
  return out.length ? out : null;
}

/** apply applies the set and del elements of ops to the Map fields in order. */
export function apply(fields, ops) {
  if (!ops) return fields;
  for (const o of ops) {
    if (o.o === 'set') fields.set(o.f, o.v);
    else if (o.o === 'del') fields.delete(o.f);
  }
  return fields;
}

/**
 * check evaluates the expects of ops in order against fields, as the commit script does
 * (an expect sees the writes of earlier elements of the same op). It returns null when
 * every expect holds, or {field, want, have} for the first that fails.
 */
export function check(fields, ops) {
  const pending = new Map();
  for (const o of ops) {
    if (o.o === 'expect') {
      const have = pending.has(o.f) ? pending.get(o.f) : fields.get(o.f);
      const want = o.v === undefined || o.v === null ? undefined : o.v;
      if (have !== want) return { field: o.f, want, have };
    } else if (o.o === 'set') {
      pending.set(o.f, o.v);
    } else if (o.o === 'del') {
      pending.set(o.f, undefined);
    }
  }
  return null;
}

/** writes returns the set and del elements of ops (what a committed op carries). */
export function writes(ops) {
  return ops.filter((o) => o.o !== 'expect');
}

/** hasExpect reports whether ops carry a precondition. */
export function hasExpect(ops) {
  return ops.some((o) => o.o === 'expect');
}

/**
 * compose returns one op equivalent to a followed by b when neither carries an expect:
 * the last write per field wins, in the order fields were first written. Ops with expects
 * are never composed (see dsm.js): a failed precondition must roll back only its own op.
 */
export function compose(a, b) {
  const last = new Map();
  for (const o of a) last.set(o.f, o);
  for (const o of b) last.set(o.f, o);
  return [...last.values()];
}

/**
 * wellFormed reports whether s holds no lone UTF-16 surrogate. JSON.stringify turns one
 * (a string cut inside an emoji) into a \uD83D escape that no other replica can store:
 * the gateway refuses it, so the client refuses it first, without a round trip.
 */
export function wellFormed(s) {
  if (typeof s.isWellFormed === 'function') return s.isWellFormed();
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/**
 * validate checks one op against the limits announced in welcome (sizes in bytes of
 * UTF-8, as the server counts them); it returns an error text or null.
 */
export function validate(ops, limits = {}) {
  if (!Array.isArray(ops) || ops.length === 0) return 'empty op';
  const maxOps = limits.max_ops ?? limits.maxOps ?? 32;
  const maxField = limits.max_field_bytes ?? limits.maxFieldBytes ?? 128;
  const maxValue = limits.max_value_bytes ?? limits.maxValueBytes ?? 4096;
  if (ops.length > maxOps) return `too_many_ops: ${ops.length} elements > ${maxOps}`;
  for (const [i, o] of ops.entries()) {
    if (o.o !== 'set' && o.o !== 'del' && o.o !== 'expect') return `element ${i}: unknown kind ${o.o}`;
    if (typeof o.f !== 'string' || o.f === '') return `element ${i}: empty field name`;
    if (!wellFormed(o.f)) return `element ${i}: field name holds a lone UTF-16 surrogate`;
    if (typeof o.v === 'string' && !wellFormed(o.v)) return `element ${i}: value of ${o.f} holds a lone UTF-16 surrogate`;
    if (utf8Len(o.f) > maxField) return `value_too_long: field name of element ${i}`;
    if (o.o === 'set' && typeof o.v !== 'string') return `element ${i}: set ${o.f} without a string value`;
    if (o.o === 'expect' && o.v !== undefined && o.v !== null && typeof o.v !== 'string') {
      return `element ${i}: expect ${o.f} with a non-string value`;
    }
    if (typeof o.v === 'string' && utf8Len(o.v) > maxValue) return `value_too_long: value of ${o.f}`;
  }
  return null;
}

const enc = new TextEncoder();
function utf8Len(s) {
  return enc.encode(s).length;
}

/** set, del, expect build op elements. */
export const set = (f, v) => ({ o: 'set', f, v: String(v) });
export const del = (f) => ({ o: 'del', f });
export const expect = (f, v) => (v === undefined || v === null ? { o: 'expect', f } : { o: 'expect', f, v: String(v) });
