// The golden vectors of abi/testdata: the fake host's encoders and decoders
// must produce and read them byte for byte, and the SDK, in a guest
// (testdata/vectors), must decode every batch and query vector to what it
// says.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  FakeHost, decodeEmits, decodeHeaders, encodeBatch, encodeEntries, encodeQuery, text, utf8,
} from "../testing/index.js";
import { build } from "./build.js";

const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, "..", "..", "..", "abi", "testdata");

const hex = (s) => Uint8Array.from(Buffer.from(s, "hex"));
const val = (s) => (s === "null" ? null : hex(s));
const toHex = (b) => Buffer.from(b).toString("hex");

/** Parses a .vec file: vectors of "key rest" lines, with repeated record/header/emit/entry/param lines. */
function vectors(file) {
  const out = [];
  let v = null;
  for (const raw of readFileSync(join(testdata, file), "utf8").split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const sp = line.indexOf(" ");
    const word = sp < 0 ? line : line.slice(0, sp);
    const rest = sp < 0 ? "" : line.slice(sp + 1);
    const kv = () => Object.fromEntries(rest.split(" ").filter(Boolean).map((p) => { const i = p.indexOf("="); return [p.slice(0, i), p.slice(i + 1)]; }));
    switch (word) {
      case "vector": v = { name: rest, items: [] }; out.push(v); break;
      case "end": v = null; break;
      case "record": case "emit": case "entry": case "param": {
        const o = kv();
        v.items.push({ kind: word, ...o, emptyHeaders: o.headers === "empty", headers: [] });
        break;
      }
      case "header": {
        const h = kv();
        const target = v.items.length > 0 ? v.items[v.items.length - 1].headers : (v.headers ??= []);
        target.push({ key: hex(h.key), value: val(h.value) });
        break;
      }
      case "topics": v.topics = rest.split(" ").filter(Boolean); break;
      default: v[word] = rest;
    }
  }
  return out;
}

test("batch vectors encode byte for byte", () => {
  const vs = vectors("batch.vec");
  assert.ok(vs.length >= 3);
  for (const v of vs) {
    const recs = v.items.map((r) => ({ topic: Number(r.topic), partition: Number(r.partition), offset: BigInt(r.offset), timestamp: BigInt(r.timestamp), key: val(r.key), value: val(r.value), headers: r.headers }));
    assert.equal(toHex(encodeBatch(recs, BigInt(v.stream_time), v.topics ?? [])), v.encoded, v.name);
  }
});

test("header, emit, entry and query vectors", () => {
  for (const v of vectors("headers.vec")) {
    const hs = decodeHeaders(hex(v.encoded));
    assert.deepEqual(hs.map((h) => [toHex(h.key), h.value && toHex(h.value)]), (v.headers ?? []).map((h) => [toHex(h.key), h.value && toHex(h.value)]), v.name);
  }
  for (const v of vectors("emits.vec")) {
    const es = decodeEmits(hex(v.encoded));
    assert.equal(es.length, v.items.length, v.name);
    es.forEach((e, i) => {
      const w = v.items[i];
      assert.equal(e.output, Number(w.output), v.name);
      assert.equal(e.rec, Number(w.rec), v.name);
      assert.equal(e.timestamp, BigInt(w.ts), v.name);
      assert.equal(e.key && toHex(e.key), w.key === "null" ? null : w.key, v.name);
      assert.equal(e.value && toHex(e.value), w.value === "null" ? null : w.value, v.name);
      if (w.emptyHeaders) assert.deepEqual(e.headers, [], v.name);
      else if (w.headers.length > 0) assert.deepEqual(e.headers.map((h) => [toHex(h.key), h.value && toHex(h.value)]), w.headers.map((h) => [toHex(h.key), h.value && toHex(h.value)]), v.name);
      else assert.equal(e.headers, null, v.name);
    });
  }
  for (const v of vectors("entries.vec")) {
    assert.equal(toHex(encodeEntries(v.items.map((e) => [hex(e.key), hex(e.value)]))), v.encoded, v.name);
  }
  for (const v of vectors("query.vec")) {
    const q = { partition: Number(v.partition), method: v.method ?? "", route: v.route ?? "", path: v.path ?? "", rawQuery: v.raw_query ?? "",
      params: v.items.map((p) => ({ name: hex(p.name), value: hex(p.value) })), body: v.body ? hex(v.body) : new Uint8Array(0) };
    assert.equal(toHex(encodeQuery(q)), v.encoded, v.name);
  }
});

test("the SDK decodes every batch vector", () => {
  const host = new FakeHost(build(join(here, "..", "testdata", "vectors"))).output("out").output("meta");
  for (const v of vectors("batch.vec")) {
    const bytes = hex(v.encoded);
    // The vector's own bytes, written straight into the guest: FakeHost.run
    // would encode the records itself.
    const inst = host.instantiate();
    host.cur = { kind: "batch", records: v.items.map((r) => ({ timestamp: BigInt(r.timestamp) })), work: new Map([...host.stores].map(([n, s]) => [n, new Map(s.data)])), journal: [], emits: [], errors: new Map(), iters: new Map() };
    const ptr = inst.exports.streamrt_buffer(bytes.length);
    new Uint8Array(inst.exports.memory.buffer).set(bytes, ptr);
    assert.equal(inst.exports.streamrt_process(ptr, bytes.length), 0, v.name);
    const emits = host.cur.emits;
    host.cur = null;
    assert.equal(emits.length, 2 * v.items.length, v.name);
    v.items.forEach((r, i) => {
      const got = emits[2 * i].record, m = emits[2 * i + 1].record;
      assert.equal(emits[2 * i].rec, i, v.name);
      assert.equal(got.key && toHex(got.key), r.key === "null" ? null : r.key, `${v.name} record ${i} key`);
      assert.equal(got.value && toHex(got.value), r.value === "null" ? null : r.value, `${v.name} record ${i} value`);
      assert.equal(got.timestamp, BigInt(r.timestamp), `${v.name} record ${i} timestamp`);
      assert.deepEqual(got.headers.map((h) => [toHex(h.key), h.value && toHex(h.value)]), r.headers.map((h) => [toHex(h.key), h.value && toHex(h.value)]), `${v.name} record ${i} headers`);
      assert.equal(text(m.key), `topic=${v.topics[Number(r.topic)]} partition=${r.partition} offset=${r.offset} ts=${r.timestamp} headers=${r.headers.length} stream=${v.stream_time}`, v.name);
    });
  }
});

test("the SDK decodes every query vector", () => {
  const host = new FakeHost(build(join(here, "..", "testdata", "vectors")));
  for (const v of vectors("query.vec")) {
    const params = v.items.map((p) => ({ name: hex(p.name), value: hex(p.value) }));
    const q = { partition: Number(v.partition), method: v.method ?? "", route: v.route ?? "", path: v.path ?? "", rawQuery: v.raw_query ?? "", params, body: v.body ? hex(v.body) : new Uint8Array(0) };
    const a = host.query(q);
    assert.equal(a.status, 200, v.name);
    let want = `partition=${q.partition}\nmethod=${q.method}\nroute=${q.route}\npath=${q.path}\nraw_query=${q.rawQuery}\n`;
    for (const p of params) want += `param ${text(p.name)}=${text(p.value)}\n`;
    want += `body=${toHex(q.body)}\n`;
    assert.equal(text(a.body), want, v.name);
  }
});
