// The encodings of host ABI v1 (abi/ABI.md) in JavaScript, for the fake
// host. Byte arrays are Uint8Arrays; null keys, values and header values
// are null. The golden vectors in abi/testdata pin them (tests/vectors.test.js).

export const NO_RECORD = -1;
export const INHERIT_TIMESTAMP = -1n;
export const NULL_LENGTH = 0xffffffff;
export const EMIT_FIXED_SIZE = 28;

export const Code = Object.freeze({
  OK: 0, NOT_FOUND: -1, UNKNOWN_STORE: -2, UNKNOWN_OUTPUT: -3, READ_ONLY: -4,
  INVALID: -5, BAD_ITERATOR: -6, TOO_LARGE: -7, INTERNAL: -8, NOT_ALLOWED: -9,
});

const enc = new TextEncoder();

/** A growable little-endian byte writer. */
export class Writer {
  constructor() { this.buf = new Uint8Array(256); this.len = 0; }
  reserve(n) {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  view(n) { this.reserve(n); const v = new DataView(this.buf.buffer, this.len, n); this.len += n; return v; }
  u8(v) { this.view(1).setUint8(0, v); }
  u16(v) { this.view(2).setUint16(0, v, true); }
  u32(v) { this.view(4).setUint32(0, v >>> 0, true); }
  i32(v) { this.view(4).setInt32(0, v, true); }
  i64(v) { this.view(8).setBigInt64(0, BigInt(v), true); }
  bytes(b) { this.reserve(b.length); this.buf.set(b, this.len); this.len += b.length; }
  done() { return this.buf.slice(0, this.len); }
}

/** A little-endian reader over b that throws on a read past the end. */
export class Reader {
  constructor(b) { this.b = b; this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength); this.pos = 0; }
  need(n) { if (n < 0 || this.pos + n > this.b.length) throw new Error("truncated"); }
  u8() { this.need(1); return this.dv.getUint8(this.pos++); }
  u16() { this.need(2); const v = this.dv.getUint16(this.pos, true); this.pos += 2; return v; }
  u32() { this.need(4); const v = this.dv.getUint32(this.pos, true); this.pos += 4; return v; }
  i32() { this.need(4); const v = this.dv.getInt32(this.pos, true); this.pos += 4; return v; }
  i64() { this.need(8); const v = this.dv.getBigInt64(this.pos, true); this.pos += 8; return v; }
  bytes(n) { this.need(n); const v = this.b.slice(this.pos, this.pos + n); this.pos += n; return v; }
  done() { return this.pos === this.b.length; }
}

export const utf8 = (s) => enc.encode(s);
export const text = (b) => new TextDecoder().decode(b);

function putHeaders(w, headers) {
  w.u32(headers.length);
  for (const h of headers) {
    const k = typeof h.key === "string" ? utf8(h.key) : h.key;
    w.u32(k.length); w.bytes(k);
    if (h.value == null) w.u32(NULL_LENGTH); else { w.u32(h.value.length); w.bytes(h.value); }
  }
}

/**
 * Encodes a batch: records are {topic, partition, offset, timestamp, key,
 * value, headers}, with topic a name (the topic table is built in order of
 * first use) or a topic-table index when topics is given.
 */
export function encodeBatch(records, streamTime, topics) {
  const table = topics ? [...topics] : [];
  if (!topics) for (const r of records) if (!table.includes(r.topic)) table.push(r.topic);
  const w = new Writer();
  w.u32(records.length); w.i64(streamTime); w.u16(table.length);
  for (const t of table) { const b = utf8(t); w.u16(b.length); w.bytes(b); }
  for (const r of records) {
    const key = r.key ?? null, value = r.value ?? null;
    w.u8((key !== null ? 1 : 0) | (value !== null ? 2 : 0));
    w.u16(typeof r.topic === "number" ? r.topic : table.indexOf(r.topic));
    w.i32(r.partition ?? 0); w.i64(r.offset ?? 0); w.i64(r.timestamp ?? 0);
    w.u32(key ? key.length : 0); if (key) w.bytes(key);
    w.u32(value ? value.length : 0); if (value) w.bytes(value);
    putHeaders(w, r.headers ?? []);
  }
  return w.done();
}

/** Decodes a header list (count:u32 header*); throws on a malformed one. */
export function decodeHeaders(b) {
  const r = new Reader(b);
  const n = r.u32();
  const out = [];
  for (let i = 0; i < n; i++) {
    const key = r.bytes(r.u32());
    const vl = r.u32();
    out.push({ key, value: vl === NULL_LENGTH ? null : r.bytes(vl) });
  }
  if (!r.done()) throw new Error("bytes after the header list");
  return out;
}

/** Decodes an emit_batch buffer into {output, rec, timestamp, key, value, headers}; throws on a malformed one. */
export function decodeEmits(b) {
  const r = new Reader(b);
  const out = [];
  while (!r.done()) {
    const output = r.i32(), rec = r.i32(), timestamp = r.i64();
    const kl = r.u32(), vl = r.u32(), hl = r.u32();
    const key = kl === NULL_LENGTH ? null : r.bytes(kl);
    const value = vl === NULL_LENGTH ? null : r.bytes(vl);
    const headers = hl === 0 ? null : decodeHeaders(r.bytes(hl));
    out.push({ output, rec, timestamp, key, value, headers });
  }
  return out;
}

/** Encodes range_next entries: key_len:u32 key value_len:u32 value each. */
export function encodeEntries(entries) {
  const w = new Writer();
  for (const [k, v] of entries) { w.u32(k.length); w.bytes(k); w.u32(v.length); w.bytes(v); }
  return w.done();
}

/** Encodes a query request {partition, method, route, path, rawQuery, params: [{name, value}], body}. */
export function encodeQuery(q) {
  const w = new Writer();
  const str = (s) => { const b = typeof s === "string" ? utf8(s) : s; w.u32(b.length); w.bytes(b); };
  w.i32(q.partition ?? -1);
  str(q.method ?? "GET"); str(q.route ?? ""); str(q.path ?? ""); str(q.rawQuery ?? "");
  const params = q.params ?? [];
  w.u32(params.length);
  for (const p of params) { str(p.name); str(p.value); }
  const body = q.body ?? new Uint8Array(0);
  w.u32(body.length); w.bytes(body);
  return w.done();
}
