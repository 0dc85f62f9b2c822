// The ABI conformance transcript (abi/testdata/conformance/conformance.txt)
// run with the conformance guest on the fake host: what the host's
// runtime/internal/engine and runtime/internal/serve tests check on the real
// host, checked here on FakeHost, so that a stage's unit tests on FakeHost
// see what the host would do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FakeHost, TaskError, text } from "../testing/index.js";
import { build } from "./build.js";

const here = dirname(fileURLToPath(import.meta.url));
const file = join(here, "..", "..", "..", "abi", "testdata", "conformance", "conformance.txt");
const wasm = new WebAssembly.Module(readFileSync(build(join(here, "..", "conformance"))));

/** Splits a line at spaces outside double quotes (abitest.Tokens). */
function tokens(line) {
  const out = [];
  let cur = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') {
      cur += c;
      for (i++; ; i++) {
        if (i >= line.length) throw new Error("unterminated string");
        cur += line[i];
        if (line[i] === "\\" && i + 1 < line.length) cur += line[++i];
        else if (line[i] === '"') break;
      }
    } else if (c === " " || c === "\t") {
      if (cur) out.push(cur);
      cur = "";
    } else cur += c;
  }
  if (cur) out.push(cur);
  return out;
}

/** A transcript value (abitest.Value): null, "quoted" (optionally *N), hex:HEX or a bare word. */
function value(s) {
  if (s === "null") return null;
  if (s.startsWith("hex:")) return Uint8Array.from(Buffer.from(s.slice(4), "hex"));
  if (!s.startsWith('"')) return Uint8Array.from(Buffer.from(s, "latin1"));
  const out = [];
  let i = 1;
  for (; s[i] !== '"'; i++) {
    if (i >= s.length) throw new Error("unterminated " + s);
    if (s[i] !== "\\") { out.push(s.charCodeAt(i)); continue; }
    const e = s[++i];
    if (e === "n") out.push(10);
    else if (e === "t") out.push(9);
    else if (e === "x") { out.push(parseInt(s.slice(i + 1, i + 3), 16)); i += 2; }
    else out.push(e.charCodeAt(0));
  }
  const rest = s.slice(i + 1);
  const one = Uint8Array.from(out);
  if (rest === "") return one;
  const n = Number(rest.slice(1));
  const rep = new Uint8Array(one.length * n);
  for (let j = 0; j < n; j++) rep.set(one, j * one.length);
  return rep;
}

const kv = (toks) => toks.map((t) => { const i = t.indexOf("="); return [t.slice(0, i), t.slice(i + 1)]; });
const same = (a, b) => (a === null || b === null ? a === b : Buffer.from(a).equals(Buffer.from(b)));
const show = (b) => (b === null ? "null" : JSON.stringify(Buffer.from(b).toString("latin1")));

function parse() {
  const t = { stage: {}, scenarios: [], loads: [], queries: [] };
  let inQueries = false, sc = null, batch = null, q = null, offsets = {}, index = 0, n = 0;
  for (const raw of readFileSync(file, "latin1").split("\n")) {
    n++;
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const toks = tokens(line);
    const word = toks[0];
    if (word === "stage") {
      for (const [k, v] of kv(toks.slice(1))) t.stage[k] = v.split(",");
    } else if (word === "queries") {
      inQueries = true;
      t.tables = toks[1].slice("tables=".length).split(",");
    } else if (!inQueries && word === "scenario") {
      sc = { name: toks[1], policy: kv(toks.slice(2)).find(([k]) => k === "policy")?.[1] ?? "dead_letter", batches: [] };
      t.scenarios.push(sc);
      offsets = {};
      index = 0;
    } else if (!inQueries && word === "batch") {
      batch = { line: n, inputs: [], expects: [] };
      sc.batches.push(batch);
    } else if (!inQueries && word === "in") {
      const r = { topic: "in", key: null, value: null, headers: [], timestamp: 1_700_000_000_000n + BigInt(index++) };
      for (const [k, v] of kv(toks.slice(1))) {
        if (k === "topic") r.topic = v;
        else if (k === "key") r.key = value(v);
        else if (k === "value") r.value = value(v);
        else if (k === "ts") r.timestamp = BigInt(v);
        else if (k.startsWith("h.")) r.headers.push({ key: k.slice(2), value: value(v) });
      }
      r.offset = BigInt(offsets[r.topic] ?? 0);
      offsets[r.topic] = Number(r.offset) + 1;
      batch.inputs.push(r);
    } else if (!inQueries) {
      const x = { kind: word, line: n, args: toks.slice(1), kv: word === "emit" || word === "dead" || word === "skipped" || word === "stopped" ? kv(toks.slice(1)) : null };
      batch.expects.push(x);
    } else if (word === "load") {
      t.loads.push({ store: toks[1], partition: Number(toks[2]), key: value(toks[3]), value: value(toks[4]) });
    } else if (word === "query") {
      q = { line: n, req: { partition: 3, method: "GET", route: "/q", path: "/q", rawQuery: "", params: [], body: new Uint8Array(0) }, lines: [], logs: [] };
      for (const [k, v] of kv(toks.slice(1))) {
        const b = value(v);
        if (k.startsWith("param.")) q.req.params.push({ name: k.slice(6), value: b });
        else if (k === "partition") q.req.partition = Number(v);
        else if (k === "rawquery") q.req.rawQuery = b;
        else q.req[k] = b;
      }
      t.queries.push(q);
    } else if (word === "answer") {
      q.answer = { line: n };
      for (const [k, v] of kv(toks.slice(1))) {
        if (k === "status") q.answer.status = Number(v);
        else if (k === "ctype") q.answer.ctype = text(value(v));
        else { q.answer.body = value(v); q.answer.contains = k === "body~"; }
      }
    } else if (word === "line") {
      q.lines.push(value(toks[1]));
    } else if (word === "log") {
      q.logs.push({ level: toks[1], msg: text(value(toks[2])) });
    }
  }
  return t;
}

const transcript = parse();
const stage = transcript.stage;

function newHost(policy) {
  const h = new FakeHost(wasm).policy(policy, stage.dlq[0]);
  for (const s of stage.stores) h.store(s);
  for (const o of stage.outputs) { const [name, topic] = o.split(":"); h.output(name, topic); }
  return h;
}

test("the transcript has its scenarios and queries", () => {
  assert.ok(transcript.scenarios.length >= 5);
  assert.ok(transcript.queries.length >= 10);
});

for (const sc of transcript.scenarios) {
  test(`scenario ${sc.name}`, () => {
    const host = newHost(sc.policy);
    for (const b of sc.batches) {
      const dead0 = host.deadLetters.length, skipped0 = host.skipped.length, logs0 = host.logs.length;
      const stopped = b.expects.find((x) => x.kind === "stopped");
      let produced;
      try {
        produced = host.run(b.inputs);
      } catch (e) {
        if (!stopped || !(e instanceof TaskError)) throw e;
        const w = Object.fromEntries(stopped.kv);
        assert.equal(e.record.offset, BigInt(w.offset), `line ${stopped.line}`);
        assert.ok(e.reason.includes(text(value(w["error~"]))), `line ${stopped.line}: ${e.reason}`);
        return;
      }
      assert.ok(!stopped, `line ${b.line}: the task was not stopped`);
      const byTopic = {};
      for (const r of produced) (byTopic[r.topic] ??= []).push(r);
      const want = {};
      for (const x of b.expects.filter((x) => x.kind === "emit")) (want[Object.fromEntries(x.kv).topic] ??= []).push(x);
      for (const topic of new Set([...Object.keys(byTopic), ...Object.keys(want)])) {
        const got = byTopic[topic] ?? [], exp = want[topic] ?? [];
        assert.equal(got.length, exp.length, `batch at line ${b.line}: ${got.length} records on ${topic}, want ${exp.length}: ${got.map((r) => show(r.key) + "=" + show(r.value)).join(" ")}`);
        exp.forEach((x, i) => {
          const r = got[i], where = `line ${x.line}: got ${show(r.key)}=${show(r.value)} ts=${r.timestamp}`;
          const hs = [];
          let noHeaders = false;
          for (const [k, v] of x.kv) {
            if (k === "key") assert.ok(same(r.key, value(v)), where);
            else if (k === "value") assert.ok(same(r.value, value(v)), where);
            else if (k === "ts") assert.equal(r.timestamp, BigInt(v), where);
            else if (k === "headers") noHeaders = true;
            else if (k.startsWith("h.")) hs.push({ key: k.slice(2), value: value(v) });
          }
          if (noHeaders || hs.length > 0) {
            assert.equal(r.headers.length, hs.length, where);
            hs.forEach((h, j) => {
              assert.equal(text(r.headers[j].key), h.key, where);
              assert.ok(same(r.headers[j].value, h.value), where);
            });
          }
        });
      }
      const dead = host.deadLetters.slice(dead0);
      const wantDead = b.expects.filter((x) => x.kind === "dead");
      assert.equal(dead.length, wantDead.length, `batch at line ${b.line}: dead letters ${dead.map((d) => d.record.offset + " " + d.error).join("; ")}`);
      wantDead.forEach((x, i) => {
        const w = Object.fromEntries(x.kv), d = dead[i];
        assert.equal(d.record.offset, BigInt(w.offset), `line ${x.line}`);
        assert.equal(d.record.topic, w.topic ?? "in", `line ${x.line}`);
        if ("error" in w) assert.equal(d.error, text(value(w.error)), `line ${x.line}`);
        else assert.ok(d.error.includes(text(value(w["error~"]))), `line ${x.line}: ${d.error}`);
        if (w.kind) assert.equal(d.kind, w.kind, `line ${x.line}`);
      });
      const skipped = host.skipped.slice(skipped0);
      const wantSkipped = b.expects.filter((x) => x.kind === "skipped");
      assert.equal(skipped.length, wantSkipped.length, `batch at line ${b.line}: skipped`);
      wantSkipped.forEach((x, i) => {
        const w = Object.fromEntries(x.kv);
        assert.equal(skipped[i].record.offset, BigInt(w.offset), `line ${x.line}`);
        assert.ok(skipped[i].error.includes(text(value(w["error~"]))), `line ${x.line}: ${skipped[i].error}`);
      });
      const logs = host.logs.slice(logs0);
      for (const x of b.expects) {
        const where = `line ${x.line}`;
        if (x.kind === "stored") assert.ok(same(host.get(x.args[0], value(x.args[1])) ?? null, value(x.args[2])), where);
        else if (x.kind === "absent") assert.equal(host.get(x.args[0], value(x.args[1])), undefined, where);
        else if (x.kind === "size") assert.equal(host.stores.get(x.args[0]).data.size, Number(x.args[1]), where);
        else if (x.kind === "log") assert.ok(logs.some((l) => l.level === x.args[0] && l.message === text(value(x.args[1]))), `${where}: ${JSON.stringify(logs)}`);
      }
    }
  });
}

test("queries", () => {
  for (const q of transcript.queries) {
    // The fake host holds one partition of each store: the query's.
    const host = new FakeHost(wasm);
    for (const s of stage.stores) host.store(s);
    for (const s of transcript.tables) host.table(s);
    for (const o of stage.outputs) { const [name, topic] = o.split(":"); host.output(name, topic); }
    for (const l of transcript.loads) {
      if (transcript.tables.includes(l.store) || l.partition === q.req.partition) host.set(l.store, l.key, l.value);
    }
    const a = host.query(q.req);
    const where = `line ${q.answer.line}: answered ${a.status} ${JSON.stringify(a.contentType)} ${show(a.body)}`;
    assert.equal(a.status, q.answer.status, where);
    assert.equal(a.contentType, q.answer.ctype, where);
    let body = q.answer.body;
    if (body === undefined) {
      body = Buffer.concat(q.lines.map((l) => Buffer.concat([Buffer.from(l), Buffer.from("\n")])));
    }
    if (q.answer.contains) assert.ok(Buffer.from(a.body).includes(Buffer.from(body)), where);
    else assert.ok(same(a.body, body), where);
    for (const l of q.logs) assert.ok(host.logs.some((g) => g.level === l.level && g.message === l.msg), `line ${q.line}: log ${l.level} ${l.msg}: ${JSON.stringify(host.logs)}`);
  }
});
