// A batch handler (testdata/batch) on the fake host: Batch.at attributes
// effects to a record, Batch.fail fails one record and undoes its effects,
// a returned error fails the batch, which the host then runs one record per
// call, and effects after Batch.release belong to the batch as a whole.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FakeHost, text, utf8 } from "../testing/index.js";
import { build } from "./build.js";

const here = dirname(fileURLToPath(import.meta.url));
const wasm = build(join(here, "..", "testdata", "batch"));
const rec = (offset, key, word) => ({ topic: "in", offset: BigInt(offset), key: utf8(key), value: utf8(word) });
const show = (rs) => rs.map((r) => `${text(r.key)}=${text(r.value)}`).join(" ");

test("Batch.fail fails one record; the batch goes on", () => {
  const host = new FakeHost(wasm).store("seen").output("out").policy("dead_letter");
  const out = host.run([rec(0, "a", "x"), rec(1, "b", "fail"), rec(2, "c", "y")]);
  assert.equal(show(out), "a=x c=y batch=3");
  assert.deepEqual(host.deadLetters.map((d) => [d.record.offset, d.error, d.kind]), [[1n, "record 1 failed", "record"]]);
  assert.equal(host.get("seen", "b"), undefined);
  assert.equal(text(host.get("seen", "c")), "y");
});

test("a batch handler's error fails the batch; the host runs it one record per call", () => {
  const host = new FakeHost(wasm).store("seen").output("out").policy("skip");
  const out = host.run([rec(0, "a", "x"), rec(1, "b", "boom"), rec(2, "c", "y")]);
  assert.equal(show(out), "a=x batch=1 c=y batch=1");
  assert.deepEqual(host.skipped.map((d) => [d.record.offset, d.error, d.kind]), [[1n, "boom at record 0", "batch"]]);
  assert.equal(host.get("seen", "b"), undefined);
});
