// The SDK under Node on the fake host, driven by the conformance guest's
// scripts (see abi/testdata/conformance/conformance.txt): stores, emits
// with headers and timestamps, a failed record's effects undone, a throw
// replayed as a trap, the error policies, and queries.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FakeHost, TaskError, text, utf8 } from "../testing/index.js";
import { build } from "./build.js";

const here = dirname(fileURLToPath(import.meta.url));
const wasm = build(join(here, "..", "conformance"));

const host = (policy) => new FakeHost(wasm).store("seen").store("aux").table("glob").output("out", "out-topic").output("side", "side-topic").policy(policy);
const rec = (offset, script, extra = {}) => ({ topic: "in", offset: BigInt(offset), timestamp: 1_700_000_000_000n + BigInt(offset), key: utf8(`k${offset}`), value: utf8(script), ...extra });
const show = (rs) => rs.map((r) => `${r.topic} ${r.key === null ? "~" : text(r.key)}=${r.value === null ? "~" : text(r.value)}`);

test("stores, reads of the batch's own writes, emits", () => {
  const h = host("fail");
  const out = h.run([rec(0, "put seen a 1; get seen a; get seen zz; emit side sk sv ts=42 h:x=%00%ff h:n=~"), rec(1, "del seen a; get seen a")]);
  assert.deepEqual(show(out), ["out-topic get seen a=1", "out-topic get seen zz=~", "side-topic sk=sv", "out-topic get seen a=~"]);
  assert.equal(out[2].timestamp, 42n);
  assert.deepEqual(out[2].headers.map((x) => [text(x.key), x.value && [...x.value]]), [["x", [0, 255]], ["n", null]]);
  assert.equal(out[0].timestamp, 1_700_000_000_000n);
  assert.equal(h.get("seen", "a"), undefined);
});

test("a failed record's effects are undone, the others kept", () => {
  const h = host("dead_letter");
  const out = h.run([rec(0, "put seen x 1; emit out a 1"), rec(1, "put seen y 1; emit out b 1; fail oops"), rec(2, "?fail inner; emit out c 1")]);
  assert.deepEqual(show(out), ["out-topic a=1", "out-topic fail inner=error: inner", "out-topic c=1"]);
  assert.deepEqual(h.deadLetters.map((d) => [d.record.offset, d.error, d.kind]), [[1n, "oops", "record"]]);
  assert.equal(text(h.get("seen", "x")), "1");
  assert.equal(h.get("seen", "y"), undefined);
});

test("a throw fails its record with the message, the batch replayed", () => {
  const h = host("skip");
  const out = h.run([rec(0, "put seen s 1; emit out a 1"), rec(1, "put seen t 1; panic bang"), rec(2, "emit out c 1")]);
  assert.deepEqual(show(out), ["out-topic a=1", "out-topic c=1"]);
  assert.deepEqual(h.skipped.map((d) => [d.record.offset, d.error, d.kind]), [[1n, "panic: bang", "trap"]]);
  assert.ok(h.logs.some((l) => l.level === "error" && l.message.startsWith("streamrt: record 0: panic: bang (at ")), JSON.stringify(h.logs));
  assert.equal(h.get("seen", "t"), undefined);
  assert.equal(text(h.get("seen", "s")), "1");
});

test("the fail policy stops at the failing record", () => {
  const h = host("fail");
  assert.throws(() => h.run([rec(0, "emit out a 1"), rec(1, "fail stop here")]), (e) => e instanceof TaskError && e.record.offset === 1n && e.reason === "stop here");
});

test("unknown stores and outputs are errors, not traps", () => {
  const h = host("fail");
  const out = h.run([rec(0, "?get nope a; ?emit nope k v; ?put glob k v")]);
  assert.deepEqual(show(out), [
    'out-topic get nope a=error: streamrt: store_open "nope": unknown store',
    'out-topic emit nope k v=error: streamrt: output_open "nope": unknown output',
    'out-topic put glob k v=error: streamrt: store_put "glob": store is read-only',
  ]);
});

test("queries read the stores and answer", () => {
  const h = host("fail");
  h.set("seen", "a", "1");
  const a = h.query({ partition: 3, path: "/q", route: "/q", body: utf8("get seen a; status 404; ctype application/json; ?put seen a 2") });
  assert.equal(a.status, 404);
  assert.equal(a.contentType, "application/json");
  assert.equal(text(a.body), 'get seen a: 1\nput seen a 2: error: streamrt: store_put "seen": store is read-only\n');
  const p = h.query({ body: utf8("panic boom") });
  assert.deepEqual([p.status, text(p.body)], [500, '{"error":"panic: boom"}']);
});
