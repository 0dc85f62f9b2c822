// The stage's unit tests, under Node on the SDK's fake host, which undoes
// failed records and applies the error policy as the streamrt host does.
// `npm test` builds the stage (build/stage.wasm) first.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FakeHost, TaskError, text, utf8 } from "streamrt";

const wasm = new URL("../build/stage.wasm", import.meta.url).pathname;
const click = (offset, page) => ({ topic: "clicks", offset: BigInt(offset), key: page === null ? null : utf8(page), value: utf8("x") });
const stage = (policy) => new FakeHost(wasm).store("click-counts").output("counts", "page-counts").policy(policy);

test("counts clicks per page", () => {
  const host = stage("fail");
  const out = host.run([click(0, "home"), click(1, "home"), click(2, "docs")]);
  assert.deepEqual(out.map((r) => `${text(r.key)}=${text(r.value)}`), ["home=1", "home=2", "docs=1"]);
  assert.ok(out.every((r) => r.topic === "page-counts"));
  assert.equal(text(host.get("click-counts", "home")), "2");
  host.run([click(3, "home")]);
  assert.equal(text(host.get("click-counts", "home")), "3");
});

test("a click without a page is dead-lettered, the others counted", () => {
  const host = stage("dead_letter");
  const out = host.run([click(0, "home"), click(1, null), click(2, "home")]);
  assert.deepEqual(out.map((r) => text(r.value)), ["1", "2"]);
  assert.deepEqual(host.deadLetters.map((d) => [d.record.offset, d.error, d.kind]), [[1n, "click without a page (null key)", "record"]]);
});

test("a count that is not a number fails the record", () => {
  const host = stage("fail").set("click-counts", "home", "many");
  assert.throws(() => host.run([click(0, "home")]), (e) => e instanceof TaskError && e.reason === 'count of page "home": "many" is not a number');
});
