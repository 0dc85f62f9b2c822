// FakeHost runs a stage module built with this SDK under Node, standing in
// for the streamrt host: stores in memory (one partition of each, tables
// read-only), outputs mapped to topics, the undo of a failed record's
// effects, the replay of a batch that trapped or failed one record per
// call, and the stage's error policy. It is for a stage's unit tests (node
// --test). The SDK's tests/transcript.test.js runs the conformance
// transcript (abi/testdata/conformance) on it, as the host's tests run it on
// the real host, so the two answer alike.

import { readFileSync } from "node:fs";
import {
  Code, EMIT_FIXED_SIZE, INHERIT_TIMESTAMP, NO_RECORD, NULL_LENGTH, Reader,
  decodeEmits, decodeHeaders, encodeBatch, encodeEntries, encodeQuery, text, utf8,
} from "./abi.js";

export * from "./abi.js";

/** The fail policy stopped the task at a record. */
export class TaskError extends Error {
  constructor(record, reason, kind) {
    super(`record at offset ${record.offset} failed (${kind}): ${reason}`);
    this.record = record;
    this.reason = reason;
    this.kind = kind;
  }
}

const bin = (b) => String.fromCharCode(...b); // a byte string: sorts in byte order
const unbin = (s) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const LEVELS = ["debug", "info", "warn", "error"];

export class FakeHost {
  /** module: a WebAssembly.Module, the module's bytes, or the path of a .wasm file. */
  constructor(module) {
    if (typeof module === "string") module = readFileSync(module);
    this.module = module instanceof WebAssembly.Module ? module : new WebAssembly.Module(module);
    this.stores = new Map(); // name -> {readOnly, data: Map<byte string, Uint8Array>}
    this.outputs = new Map(); // name -> topic
    this.errorPolicy = "fail";
    this.dlq = "dlq";
    this.streamTime = -1n;
    this.produced = []; // {topic, key, value, headers, timestamp}
    this.deadLetters = []; // {record, error, kind}
    this.skipped = []; // {record, error, kind}
    this.logs = []; // {level, message}
    this.instance = null;
  }

  /** Declares a store the stage reads and writes. */
  store(name) { this.stores.set(name, { readOnly: false, data: new Map() }); return this; }
  /**
   * Declares a table: a store the stage may only read, and that a query
   * routed to no partition may read (as the host's global tables).
   */
  table(name) { this.stores.set(name, { readOnly: true, data: new Map() }); return this; }
  /** Declares an output and the topic it writes to. */
  output(name, topic = name) { this.outputs.set(name, topic); return this; }
  /** Sets the error policy: "fail", "skip" or "dead_letter" (to topic dlq). */
  policy(p, dlq = "dlq") { this.errorPolicy = p; this.dlq = dlq; return this; }

  get(store, key) { return this.stores.get(store).data.get(bin(asBytes(key))); }
  set(store, key, value) { this.stores.get(store).data.set(bin(asBytes(key)), asBytes(value)); return this; }

  /**
   * Runs records (see encodeBatch) through the stage as the host does: one
   * call for the batch; when it traps or fails, one call per record. It
   * returns what the batch produced; the fail policy throws a TaskError.
   */
  run(records) {
    for (const r of records) if (BigInt(r.timestamp ?? 0) > this.streamTime) this.streamTime = BigInt(r.timestamp ?? 0);
    const whole = this.call(records);
    if (whole.ok) return this.commit(records, whole);
    const produced = [];
    for (const r of records) {
      const one = this.call([r]);
      if (one.ok) {
        produced.push(...this.commit([r], one));
        continue;
      }
      const reason = one.errors.get(0) ?? one.batchError ?? one.trap ?? "batch failed";
      this.applyPolicy(r, reason, one.trap ? "trap" : one.errors.has(0) ? "record" : "batch");
    }
    return produced;
  }

  /** Answers a query request {partition, method, route, path, rawQuery, params, body}: {status, contentType, body}. */
  query(req) {
    const inst = this.instantiate();
    const bytes = encodeQuery(req);
    this.cur = { kind: "query", partition: req.partition ?? -1, answer: null, iters: new Map() };
    try {
      const ptr = inst.exports.streamrt_buffer(bytes.length);
      new Uint8Array(inst.exports.memory.buffer).set(bytes, ptr);
      const rc = inst.exports.streamrt_query(ptr, bytes.length);
      const a = this.cur.answer;
      if (a) return a;
      return { status: 500, contentType: "application/json", body: utf8(JSON.stringify({ error: rc ? `handler returned ${rc}` : "no answer" })) };
    } catch (e) {
      this.instance = null;
      const a = this.cur.answer; // a guest may answer, then trap
      if (a) return a;
      return { status: 500, contentType: "application/json", body: utf8(JSON.stringify({ error: String(e) })) };
    } finally {
      this.cur = null;
    }
  }

  instantiate() {
    if (this.instance) return this.instance;
    const inst = new WebAssembly.Instance(this.module, { streamrt_v1: this.imports() });
    this.instance = inst;
    this.cur = { kind: "init", iters: new Map() };
    if (inst.exports._initialize) inst.exports._initialize();
    if (inst.exports.streamrt_init && inst.exports.streamrt_init() !== 0) {
      this.instance = null;
      throw new Error("streamrt_init refused the instance: " + this.logs.map((l) => l.message).join("; "));
    }
    this.cur = null;
    return inst;
  }

  /** One guest call over records; nothing is applied yet. */
  call(records) {
    const inst = this.instantiate();
    const batch = encodeBatch(records, this.streamTime);
    const work = new Map();
    for (const [name, s] of this.stores) work.set(name, new Map(s.data));
    const cur = this.cur = {
      kind: "batch", records, work, journal: [], emits: [], errors: new Map(), batchError: null, iters: new Map(),
    };
    let rc, trap = null;
    try {
      const ptr = inst.exports.streamrt_buffer(batch.length);
      if (ptr === 0) throw new Error("streamrt_buffer returned 0");
      new Uint8Array(inst.exports.memory.buffer).set(batch, ptr);
      rc = inst.exports.streamrt_process(ptr, batch.length);
    } catch (e) {
      trap = String(e.message ?? e);
      this.instance = null;
    } finally {
      this.cur = null;
    }
    return { ok: trap === null && rc === 0, trap, errors: cur.errors, batchError: cur.batchError, work, emits: cur.emits };
  }

  commit(records, res) {
    for (const [name, data] of res.work) this.stores.get(name).data = data;
    const produced = [];
    for (const e of res.emits) {
      if (res.errors.has(e.rec)) continue;
      produced.push(e.record);
    }
    this.produced.push(...produced);
    for (const [i, reason] of res.errors) this.applyPolicy(records[i], reason, "record");
    return produced;
  }

  applyPolicy(record, error, kind) {
    const f = { record, error, kind };
    if (this.errorPolicy === "skip") this.skipped.push(f);
    else if (this.errorPolicy === "dead_letter") this.deadLetters.push(f);
    else throw new TaskError(record, error, kind);
  }

  imports() {
    const host = this;
    const mem = () => new Uint8Array(host.instance.exports.memory.buffer);
    const read = (ptr, len) => {
      if (len === -1) return null;
      const m = mem();
      if (len < 0 || ptr < 0 || ptr + len > m.length) throw new RangeError("outside memory");
      return m.slice(ptr, ptr + len);
    };
    const guard = (fn) => (...args) => {
      try { return fn(...args); } catch (e) { if (e instanceof RangeError) return Code.INVALID; throw e; }
    };
    const cur = () => host.cur ?? { kind: "none", iters: new Map() };
    const names = () => [...host.stores.keys()];
    const storeOf = (h) => {
      const name = names()[h];
      return name === undefined ? null : { name, ...host.stores.get(name) };
    };
    // A query routed to no partition reads tables only.
    const unrouted = (c, s) => c.kind === "query" && c.partition === -1 && !s.readOnly;
    const validRec = (c, rec) => rec === NO_RECORD || (rec >= 0 && rec < c.records.length);
    const dataOf = (c, name) => (c.kind === "batch" ? c.work.get(name) : host.stores.get(name).data);
    const write = (h, rec, key, value, del) => {
      const c = cur();
      const s = storeOf(h);
      if (!s) return Code.UNKNOWN_STORE;
      if (key === null || (!del && value === null)) return Code.INVALID;
      if (c.kind === "query" || s.readOnly) return Code.READ_ONLY;
      if (c.kind !== "batch") return Code.NOT_ALLOWED;
      if (!validRec(c, rec)) return Code.INVALID;
      const data = c.work.get(s.name);
      const k = bin(key);
      c.journal.push({ rec, data, k, prev: data.get(k) });
      if (del) data.delete(k); else data.set(k, value);
      return 0;
    };
    const emitOne = (c, out, rec, key, value, headers, ts) => {
      const topic = [...host.outputs.values()][out];
      if (topic === undefined) return Code.UNKNOWN_OUTPUT;
      if (!validRec(c, rec)) return Code.INVALID;
      if (ts === INHERIT_TIMESTAMP) ts = rec === NO_RECORD ? host.streamTime : BigInt(c.records[rec].timestamp ?? 0);
      c.emits.push({ rec, record: { topic, key, value, headers: headers ?? [], timestamp: ts } });
      return 0;
    };
    return {
      store_open: guard((p, n) => {
        const name = text(read(p, n));
        const i = names().indexOf(name);
        return i < 0 ? Code.UNKNOWN_STORE : i;
      }),
      store_get: guard((h, kp, kl, bp, cap) => {
        const c = cur();
        const s = storeOf(h);
        if (!s) return Code.UNKNOWN_STORE;
        if (unrouted(c, s)) return Code.NOT_ALLOWED;
        const key = read(kp, kl);
        if (key === null) return Code.INVALID;
        const v = dataOf(c, s.name).get(bin(key));
        if (v === undefined) return Code.NOT_FOUND;
        if (v.length <= cap) { read(bp, cap); mem().set(v, bp); }
        return v.length;
      }),
      store_put: guard((h, rec, kp, kl, vp, vl) => write(h, rec, read(kp, kl), read(vp, vl), false)),
      store_delete: guard((h, rec, kp, kl) => write(h, rec, read(kp, kl), null, true)),
      store_range: guard((h, sp, sl, ep, el) => {
        const c = cur();
        const s = storeOf(h);
        if (!s) return Code.UNKNOWN_STORE;
        if (unrouted(c, s)) return Code.NOT_ALLOWED;
        const start = read(sp, sl), end = read(ep, el);
        const lo = start === null ? null : bin(start), hi = end === null ? null : bin(end);
        const entries = [...dataOf(c, s.name).entries()]
          .filter(([k]) => (lo === null || k >= lo) && (hi === null || k < hi))
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([k, v]) => [unbin(k), v]);
        const id = c.iters.size + 1;
        c.iters.set(id, { entries, pos: 0 });
        return id;
      }),
      range_next: guard((it, bp, cap) => {
        const i = cur().iters.get(it);
        if (!i) return Code.BAD_ITERATOR;
        read(bp, cap);
        const out = [];
        let size = 0;
        while (i.pos < i.entries.length) {
          const [k, v] = i.entries[i.pos];
          const n = 8 + k.length + v.length;
          if (size + n > cap) {
            if (out.length === 0) return n;
            break;
          }
          out.push(i.entries[i.pos++]);
          size += n;
        }
        mem().set(encodeEntries(out), bp);
        return size;
      }),
      range_close: (it) => (cur().iters.delete(it) ? 0 : Code.BAD_ITERATOR),
      output_open: guard((p, n) => {
        const name = text(read(p, n));
        if (cur().kind === "query") return Code.NOT_ALLOWED;
        const i = [...host.outputs.keys()].indexOf(name);
        return i < 0 ? Code.UNKNOWN_OUTPUT : i;
      }),
      emit: guard((out, rec, kp, kl, vp, vl, hp, hl, ts) => {
        const c = cur();
        if (c.kind !== "batch") return Code.NOT_ALLOWED;
        const key = read(kp, kl), value = read(vp, vl);
        let headers = null;
        if (hl !== 0) {
          try { headers = decodeHeaders(read(hp, hl)); } catch { return Code.INVALID; }
        }
        return emitOne(c, out, rec, key, value, headers, ts);
      }),
      emit_batch: guard((p, n) => {
        const c = cur();
        if (c.kind !== "batch") return Code.NOT_ALLOWED;
        let entries;
        try { entries = decodeEmits(read(p, n)); } catch { return Code.INVALID; }
        for (const e of entries) {
          const rc = emitOne(c, e.output, e.rec, e.key, e.value, e.headers, e.timestamp);
          if (rc !== 0) return rc;
        }
        return 0;
      }),
      log: (level, p, n) => {
        host.logs.push({ level: LEVELS[level] ?? "info", message: text(read(p, n)) });
      },
      record_error: guard((rec, p, n) => {
        const c = cur();
        const msg = text(read(p, n));
        if (c.kind !== "batch") return Code.NOT_ALLOWED;
        if (rec === NO_RECORD) { c.batchError = msg; return 0; }
        if (!validRec(c, rec)) return Code.INVALID;
        for (let j = c.journal.length - 1; j >= 0; j--) {
          const w = c.journal[j];
          if (w.rec !== rec) continue;
          if (w.prev === undefined) w.data.delete(w.k); else w.data.set(w.k, w.prev);
          c.journal.splice(j, 1);
        }
        c.emits = c.emits.filter((e) => e.rec !== rec);
        c.errors.set(rec, msg);
        return 0;
      }),
      respond: guard((status, cp, cl, bp, bl) => {
        const c = cur();
        if (c.kind !== "query" || c.answer) return Code.NOT_ALLOWED;
        if (status < 200 || status > 599) return Code.INVALID;
        c.answer = { status, contentType: text(read(cp, cl) ?? new Uint8Array(0)), body: read(bp, bl) ?? new Uint8Array(0) };
        return 0;
      }),
    };
  }
}

function asBytes(b) {
  return typeof b === "string" ? utf8(b) : b;
}

export { EMIT_FIXED_SIZE, NULL_LENGTH, Reader };
