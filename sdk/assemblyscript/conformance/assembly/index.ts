// The ABI conformance guest on the AssemblyScript SDK: an interpreter for
// the command scripts of abi/testdata/conformance/conformance.txt, whose
// header specifies the commands, run on records and on queries. Its twins
// are runtime/internal/wasm/testdata/guests/conformance (Go) and
// sdk/rust/conformance (Rust); the three must behave the same byte for
// byte, which the host's conformance tests check by running the transcript
// against each.
import {
  EmitOptions, Header, Level, Query, Record, Response, Store,
  emit, emitWith, flush, handleQuery, handleRecord, log, streamTime, str, utf8,
} from "streamrt";
import * as sys from "streamrt/assembly/sys";
export * from "streamrt/assembly/exports";

/** A growable byte buffer. */
class Bytes {
  buf: Uint8Array = new Uint8Array(64);
  len: i32 = 0;

  push(b: u8): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  append(b: Uint8Array): void {
    this.reserve(b.length);
    memory.copy(this.buf.dataStart + <usize>this.len, b.dataStart, b.length);
    this.len += b.length;
  }

  text(s: string): void {
    this.append(utf8(s));
  }

  reserve(n: i32): void {
    if (this.len + n <= this.buf.length) return;
    const next = new Uint8Array(max(this.buf.length * 2, this.len + n));
    memory.copy(next.dataStart, this.buf.dataStart, this.len);
    this.buf = next;
  }

  truncate(n: i32): void {
    this.len = n;
  }

  toBytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

// A parse error of the command at hand: the helpers below return a value
// and leave their error here.
let bad: string | null = null;

function fail(msg: string): Error {
  return new Error(msg);
}

/** An argument: "~" is null, "-" is empty, anything else is percent-decoded. */
function arg(s: string): Uint8Array | null {
  if (s == "~") return null;
  if (s == "-") return new Uint8Array(0);
  return unescape(s);
}

/** An argument where null is not possible: "~" is empty too. */
function bytes(s: string): Uint8Array {
  const b = arg(s);
  return b === null ? new Uint8Array(0) : b;
}

function unescape(s: string): Uint8Array {
  const src = utf8(s);
  const out = new Bytes();
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c == 0x25) {
      const h = i + 2 < src.length ? hexVal(src[i + 1]) : -1;
      const l = i + 2 < src.length ? hexVal(src[i + 2]) : -1;
      if (h < 0 || l < 0) {
        bad = "bad escape in " + s;
        return new Uint8Array(0);
      }
      out.push(<u8>((h << 4) | l));
      i += 2;
    } else {
      out.push(c);
    }
  }
  return out.toBytes();
}

function hexVal(c: u8): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function unhex(s: string): Uint8Array {
  const out = new Uint8Array(s.length / 2);
  if (s.length % 2 != 0) {
    bad = "bad hex " + s;
    return out;
  }
  for (let i = 0; i < s.length; i += 2) {
    const h = hexVal(<u8>s.charCodeAt(i));
    const l = hexVal(<u8>s.charCodeAt(i + 1));
    if (h < 0 || l < 0) {
      bad = "bad hex " + s;
      return out;
    }
    out[i / 2] = <u8>((h << 4) | l);
  }
  return out;
}

/** The rest of a command as one percent-decoded text. */
function text(args: string[], from: i32): string {
  return str(unescape(args.slice(from).join(" ")));
}

function int(s: string): i32 {
  let neg = false;
  let i = 0;
  if (s.length > 0 && s.charCodeAt(0) == 0x2d) {
    neg = true;
    i = 1;
  }
  if (i >= s.length) {
    bad = "bad number " + s;
    return 0;
  }
  let n: i64 = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39 || n > 0x7fffffff) {
      bad = "bad number " + s;
      return 0;
    }
    n = n * 10 + (c - 0x30);
  }
  if (neg) n = -n;
  if (n > i32.MAX_VALUE || n < i32.MIN_VALUE) {
    bad = "bad number " + s;
    return 0;
  }
  return <i32>n;
}

function number(s: string): i32 {
  const n = int(s);
  if (n < 0) bad = "bad number " + s;
  return n;
}

function ptr(b: Uint8Array | null): usize {
  return b === null ? 0 : b.dataStart;
}

function len(b: Uint8Array | null): i32 {
  return b === null ? -1 : b.length;
}

function storeHandle(name: string): i32 {
  if (name.startsWith("#")) return int(name.substring(1));
  const b = bytes(name);
  return sys.store_open(b.dataStart, b.length);
}

function outputHandle(name: string): i32 {
  if (name.startsWith("#")) return int(name.substring(1));
  const b = bytes(name);
  return sys.output_open(b.dataStart, b.length);
}

function pad4(i: i32): string {
  let s = i.toString();
  while (s.length < 4) s = "0" + s;
  return s;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function fnv1a(b: Uint8Array): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) {
    h = (h ^ <u32>b[i]) * 0x01000193;
  }
  return h;
}

function hex8(v: u32): string {
  const digits = "0123456789abcdef";
  let s = "";
  for (let i = 7; i >= 0; i--) s += digits.charAt((v >> (i * 4)) & 15);
  return s;
}

/** One run of a script: for a record, whose results are emitted, or for a query, whose results make up the answer's body. */
class Session {
  status: i32 = 200;
  ctype: string = "text/plain";
  body: Bytes = new Bytes();
  /** raw-respond answered the query: results go to the log. */
  answered: bool = false;

  constructor(public r: Record | null, public q: Query | null) {}

  script(source: string): Error | null {
    const cmds = source.split(";");
    for (let i = 0; i < cmds.length; i++) {
      const cmd = cmds[i].trim();
      if (cmd.length == 0) continue;
      if (cmd.startsWith("?")) {
        const inner = cmd.substring(1).trim();
        const err = this.run(inner);
        if (err !== null) {
          const e = this.out(inner, utf8("error: " + err.message));
          if (e !== null) return e;
        }
      } else {
        const err = this.run(cmd);
        if (err !== null) return err;
      }
    }
    return null;
  }

  index(): i32 {
    const r = this.r;
    return r === null ? -1 : r.index;
  }

  recordIndex(s: string): i32 {
    return s == "cur" ? this.index() : int(s);
  }

  /** Gives a command's result: emitted for a record; a line of the answer (or the log) in a query. */
  out(cmd: string, value: Uint8Array | null): Error | null {
    if (this.q === null) return emit("out", utf8(cmd), value);
    const line = new Bytes();
    line.text(cmd);
    if (value === null) {
      line.text(" (null)");
    } else {
      line.text(": ");
      line.append(value);
    }
    if (this.answered) {
      log(Level.INFO, str(line.toBytes()));
    } else {
      this.body.append(line.toBytes());
      this.body.push(0x0a);
    }
    return null;
  }

  outCode(cmd: string, rc: i32): Error | null {
    const t = rc >= 0 && (cmd.startsWith("raw-store") || cmd.startsWith("raw-output")) ? "ok" : rc.toString();
    return this.out(cmd, utf8(t));
  }

  run(cmd: string): Error | null {
    bad = null;
    const err = this.exec(cmd);
    if (err !== null) return err;
    if (bad !== null) return fail(bad!);
    return null;
  }

  exec(cmd: string): Error | null {
    const args = cmd.split(" ").filter((a: string): bool => a.length > 0);
    const name = args[0];
    const n = args.length - 1;
    if (name.startsWith("raw-")) {
      // A raw command acts on the host directly: what the SDK holds in its
      // emit buffer goes first.
      const e = flush();
      if (e !== null) return e;
    }
    const fixed: i32 = arity(name);
    if (fixed >= 0 && n != fixed) return fail(name + ": want " + fixed.toString() + " arguments, got " + n.toString());
    if (name == "put") {
      const k = bytes(args[2]);
      const v = bytes(args[3]);
      if (bad !== null) return null;
      return new Store(args[1]).put(k, v);
    }
    if (name == "del") {
      const k = bytes(args[2]);
      if (bad !== null) return null;
      return new Store(args[1]).delete(k);
    }
    if (name == "get") {
      const k = bytes(args[2]);
      if (bad !== null) return null;
      const l = new Store(args[1]).lookup(k);
      if (l.error !== null) return l.error;
      return this.out(cmd, l.value);
    }
    if (name == "getsum") {
      const k = bytes(args[2]);
      if (bad !== null) return null;
      const l = new Store(args[1]).lookup(k);
      if (l.error !== null) return l.error;
      const v = l.value;
      const t = v === null ? "absent" : "len=" + v.length.toString() + " fnv=" + hex8(fnv1a(v));
      return this.out(cmd, utf8(t));
    }
    if (name == "range" || name == "prefix") {
      const s = new Store(args[1]);
      let it = name == "range" ? s.range(arg(args[2]), arg(args[3])) : s.prefix(bytes(args[2]));
      if (bad !== null) return null;
      if (it.error !== null) return it.error;
      const out = new Bytes();
      while (it.next()) {
        if (out.len > 0) out.push(0x2c);
        out.append(it.key);
        out.push(0x3d);
        out.append(it.value);
      }
      if (it.error !== null) return it.error;
      return this.out(cmd, out.toBytes());
    }
    if (name == "scan") {
      const it = new Store(args[1]).range(arg(args[2]), arg(args[3]));
      if (bad !== null) return null;
      if (it.error !== null) return it.error;
      let count = 0;
      let size = 0;
      let first = new Uint8Array(0);
      let last = new Uint8Array(0);
      while (it.next()) {
        if (count == 0) first = it.key.slice();
        last = it.key.slice();
        count++;
        size += it.key.length + it.value.length;
      }
      if (it.error !== null) return it.error;
      const t = new Bytes();
      t.text("n=" + count.toString() + " bytes=" + size.toString() + " first=");
      t.append(first);
      t.text(" last=");
      t.append(last);
      return this.out(cmd, t.toBytes());
    }
    if (name == "fill") {
      const s = new Store(args[1]);
      const prefix = bytes(args[2]);
      const count = number(args[3]);
      const size = number(args[4]);
      if (bad !== null) return null;
      for (let i = 0; i < count; i++) {
        const v = new Uint8Array(size);
        for (let j = 0; j < size; j++) v[j] = <u8>(0x61 + (i + j) % 26);
        const e = s.put(concat(prefix, utf8(pad4(i))), v);
        if (e !== null) return e;
      }
      return null;
    }
    if (name == "rangeput") {
      const s = new Store(args[1]);
      const k = bytes(args[2]);
      const v = bytes(args[3]);
      if (bad !== null) return null;
      const it = s.range(null, null);
      if (it.error !== null) return it.error;
      const e = s.put(k, v);
      if (e !== null) return e;
      const out = new Bytes();
      while (it.next()) {
        if (out.len > 0) out.push(0x2c);
        out.append(it.key);
        out.push(0x3d);
        out.append(it.value);
      }
      if (it.error !== null) return it.error;
      return this.out(cmd, out.toBytes());
    }
    if (name == "emit") {
      if (n < 3) return fail("emit: want at least 3 arguments, got " + n.toString());
      const k = arg(args[2]);
      const v = arg(args[3]);
      const opts = new EmitOptions();
      const hs = new Array<Header>(0);
      for (let i = 4; i < args.length; i++) {
        const a = args[i];
        if (a.startsWith("h:")) {
          const eq = a.indexOf("=");
          if (eq < 0) return fail("emit: bad header " + a);
          const hv = arg(a.substring(eq + 1));
          hs.push(new Header(bytes(a.substring(2, eq)), hv));
        } else if (a.startsWith("ts=")) {
          const ts = I64.parseInt(a.substring(3));
          opts.timestamp = ts;
        } else {
          return fail("emit: bad argument " + a);
        }
      }
      if (bad !== null) return null;
      if (hs.length > 0) opts.headers = hs;
      return emitWith(args[1], k, v, opts);
    }
    if (name == "emitn") {
      const prefix = bytes(args[2]);
      const count = number(args[3]);
      const size = number(args[4]);
      if (bad !== null) return null;
      for (let i = 0; i < count; i++) {
        const v = new Uint8Array(size);
        v.fill(<u8>(0x61 + i % 26));
        const e = emit(args[1], concat(prefix, utf8(pad4(i))), v);
        if (e !== null) return e;
      }
      return null;
    }
    if (name == "echo" || name == "meta" || name == "time") {
      const r = this.r;
      if (r === null) return fail(name + ": no record in a query");
      if (name == "echo") return emitWith("out", r.key, r.value, EmitOptions.recordHeaders(r));
      if (name == "meta") {
        return this.out(cmd, utf8("topic=" + r.topic + " partition=" + r.partition.toString() + " offset=" + r.offset.toString() +
          " ts=" + r.timestamp.toString() + " headers=" + r.headerCount.toString()));
      }
      return this.out(cmd, utf8(streamTime().toString()));
    }
    if (name == "log") {
      if (n < 1) return fail("log: want a level");
      const level = int(args[1]);
      if (bad !== null) return fail("log: bad level " + args[1]);
      const msg = text(args, 2);
      if (level >= 0 && level <= 3) {
        log(level, msg);
      } else {
        const b = utf8(msg);
        sys.log(level, b.dataStart, b.length);
      }
      return null;
    }
    if (name == "fail") return fail(text(args, 1));
    if (name == "panic") throw new Error(text(args, 1));
    if (name == "raw-store") return this.outCode(cmd, storeHandle(args[1]));
    if (name == "raw-output") return this.outCode(cmd, outputHandle(args[1]));
    if (name == "raw-get") {
      const h = storeHandle(args[1]);
      const k = arg(args[2]);
      const cap = number(args[3]);
      if (bad !== null) return null;
      const buf = new Uint8Array(cap);
      buf.fill(0x2a);
      const rc = sys.store_get(h, ptr(k), len(k), buf.dataStart, cap);
      const t = new Bytes();
      t.text("rc=" + rc.toString() + " buf=");
      t.append(buf);
      return this.out(cmd, t.toBytes());
    }
    if (name == "raw-range") {
      const h = storeHandle(args[1]);
      const start = arg(args[2]);
      const end = arg(args[3]);
      const cap = number(args[4]);
      if (bad !== null) return null;
      const it = sys.store_range(h, ptr(start), len(start), ptr(end), len(end));
      if (it < 0) return this.out(cmd, utf8("range=" + it.toString()));
      const buf = new Uint8Array(cap);
      buf.fill(0x2a);
      const rcs = new Array<string>(0);
      for (;;) {
        const rc = sys.range_next(it, buf.dataStart, cap);
        rcs.push(rc.toString());
        if (rc <= 0 || rc > cap || rcs.length >= 10000) break;
      }
      const close = sys.range_close(it);
      const again = sys.range_close(it);
      return this.out(cmd, utf8("next=" + rcs.join(",") + " close=" + close.toString() + " again=" + again.toString()));
    }
    if (name == "raw-next") {
      const it = int(args[1]);
      const buf = new Uint8Array(16);
      return this.outCode(cmd, sys.range_next(it, buf.dataStart, 16));
    }
    if (name == "raw-close") return this.outCode(cmd, sys.range_close(int(args[1])));
    if (name == "raw-put") {
      const h = storeHandle(args[1]);
      const k = arg(args[2]);
      const v = arg(args[3]);
      if (bad !== null) return null;
      return this.outCode(cmd, sys.store_put(h, this.index(), ptr(k), len(k), ptr(v), len(v)));
    }
    if (name == "raw-del") {
      const h = storeHandle(args[1]);
      const k = arg(args[2]);
      if (bad !== null) return null;
      return this.outCode(cmd, sys.store_delete(h, this.index(), ptr(k), len(k)));
    }
    if (name == "raw-emit" || name == "raw-emit-hdr") {
      const h = outputHandle(args[1]);
      const rec = name == "raw-emit" ? this.recordIndex(args[2]) : this.index();
      const hdr = name == "raw-emit" ? new Uint8Array(0) : unhex(args[2]);
      if (bad !== null) return null;
      const k = utf8("k");
      const v = utf8("v");
      return this.outCode(cmd, sys.emit(h, rec, k.dataStart, 1, v.dataStart, 1, hdr.dataStart, hdr.length, -1));
    }
    if (name == "raw-emits") {
      const buf = this.emitBuffer(args);
      if (bad !== null) return null;
      return this.outCode(cmd, sys.emit_batch(buf.dataStart, buf.length));
    }
    if (name == "raw-respond") {
      const status = int(args[1]);
      const ct = arg(args[2]);
      const body = arg(args[3]);
      if (bad !== null) return null;
      const rc = sys.respond(status, ptr(ct), len(ct), ptr(body), len(body));
      const e = this.outCode(cmd, rc);
      if (rc == 0 && this.q !== null) this.answered = true;
      return e;
    }
    if (name == "raw-error") {
      if (n < 1) return fail("raw-error: want a record");
      const rec = this.recordIndex(args[1]);
      const msg = utf8(text(args, 2));
      if (bad !== null) return null;
      return this.outCode(cmd, sys.record_error(rec, msg.dataStart, msg.length));
    }
    const q = this.q;
    if (q !== null) return this.runQuery(q, cmd, args);
    return fail("unknown command " + name);
  }

  /** Builds raw-emits' buffer from its SPECs. */
  emitBuffer(args: string[]): Uint8Array {
    const buf = new Bytes();
    for (let i = 1; i < args.length; i++) {
      const spec = args[i];
      if (spec.startsWith("+")) {
        buf.append(unhex(spec.substring(1)));
      } else if (spec.startsWith("-")) {
        const cut = number(spec.substring(1));
        if (cut > buf.len) {
          bad = "raw-emits: cannot cut " + cut.toString() + " of " + buf.len.toString() + " bytes";
          return buf.toBytes();
        }
        buf.truncate(buf.len - cut);
      } else {
        const parts = spec.split("/");
        if (parts.length < 2 || parts.length > 3) {
          bad = "raw-emits: bad entry " + spec;
          return buf.toBytes();
        }
        const hdr = parts.length == 3 ? unhex(parts[2]) : new Uint8Array(0);
        const e = new Uint8Array(28);
        const view = new DataView(e.buffer);
        view.setInt32(0, outputHandle(parts[0]), true);
        view.setInt32(4, this.recordIndex(parts[1]), true);
        view.setInt64(8, -1, true);
        view.setUint32(16, 1, true);
        view.setUint32(20, 1, true);
        view.setUint32(24, hdr.length, true);
        buf.append(e);
        buf.text("kv");
        buf.append(hdr);
      }
    }
    return buf.toBytes();
  }

  runQuery(q: Query, cmd: string, args: string[]): Error | null {
    const name = args[0];
    const n = args.length - 1;
    const want: i32 = name == "request" || name == "body" ? 0 : name == "status" || name == "ctype" || name == "param" || name == "query" ? 1 : -1;
    if (want < 0) return fail("unknown command " + name);
    if (n != want) return fail(name + ": want " + want.toString() + " arguments, got " + n.toString());
    if (name == "status") {
      this.status = int(args[1]);
      return null;
    }
    if (name == "ctype") {
      this.ctype = str(bytes(args[1]));
      return null;
    }
    if (name == "request") {
      return this.out(cmd, utf8("partition=" + q.partition.toString() + " method=" + q.method + " route=" + q.route + " path=" + q.path));
    }
    if (name == "body") return this.out(cmd, q.body);
    if (name == "param") return this.out(cmd, utf8(q.param(args[1])));
    const vs = q.values(args[1]);
    if (vs.length == 0) return this.out(cmd, utf8("absent"));
    return this.out(cmd, utf8(vs.join(",")));
  }
}

/** The number of arguments of the commands that take a fixed number, else -1. */
function arity(name: string): i32 {
  if (name == "echo" || name == "meta" || name == "time") return 0;
  if (name == "raw-store" || name == "raw-output" || name == "raw-next" || name == "raw-close") return 1;
  if (name == "del" || name == "get" || name == "getsum" || name == "prefix" || name == "raw-del" || name == "raw-emit" || name == "raw-emit-hdr") return 2;
  if (name == "put" || name == "range" || name == "scan" || name == "rangeput" || name == "raw-get" || name == "raw-put" || name == "raw-respond") return 3;
  if (name == "fill" || name == "emitn" || name == "raw-range") return 4;
  return -1;
}

// Registered last: the handlers use the module globals above, which the
// start function initialises in order.
handleRecord((r: Record): Error | null => {
  const v = r.value;
  const s = new Session(r, null);
  return s.script(v === null ? "" : str(v));
});

handleQuery((q: Query): Response => {
  let n = 0;
  while (n < q.body.length && q.body[n] != 0x0a) n++;
  const s = new Session(null, q);
  const err = s.script(str(q.body.subarray(0, n)));
  if (err !== null) return Response.error(500, err.message);
  return new Response(s.status, s.ctype, s.body.toBytes());
});
