// Outputs and emits. During a streamrt_process call, emits are collected in
// a 64 KiB buffer in guest memory and handed to the host with one
// emit_batch call (ABI 1.2) when the next one would not fit and before the
// call returns; outside one (in a query handler, at start) each goes to
// the host at once.

import * as sys from "./sys";
import { Code, EMIT_FIXED_SIZE, INHERIT_TIMESTAMP, NULL, NULL_LENGTH } from "./abi";
import { HostError } from "./errors";
import { current } from "./state";
import { Header, Record } from "./record";

/** The size of the emit buffer: one Wasm page, as in the Go and Rust SDKs. */
export const EMIT_BUFFER_SIZE: i32 = 64 << 10;

const emitBuf: usize = heap.alloc(EMIT_BUFFER_SIZE);
let emitLen: i32 = 0;
/** EMIT_BUFFER_SIZE during streamrt_process, else 0: no entry fits. */
let emitLimit: i32 = 0;
/** The code of a flush the host refused, which fails the batch. */
let emitErr: i32 = 0;

// A scratch buffer for header lists built from EmitOptions.
let hdrBuf: usize = heap.alloc(256);
let hdrCap: i32 = 256;

/** An output the stage declares, opened on first use. */
export class Output {
  private handle: i32 = 0;
  private opened: bool = false;

  constructor(public readonly name: string) {}

  /** The output's handle, or a negative code. An undeclared output is asked about once. */
  open(): i32 {
    if (this.opened) return this.handle;
    const b = String.UTF8.encode(this.name);
    const rc = sys.output_open(changetype<usize>(b), b.byteLength);
    if (rc >= 0 || rc == Code.UNKNOWN_OUTPUT) {
      this.handle = rc;
      this.opened = true;
    }
    return rc;
  }

  /** Emits key and value (null for a null one) with the input record's timestamp and no headers. */
  emit(key: Uint8Array | null, value: Uint8Array | null): Error | null {
    const h = this.open();
    if (h < 0) return new HostError("output_open", this.name, h);
    const rc = emitRaw(h, current, key, value, 0, 0, INHERIT_TIMESTAMP);
    return rc < 0 ? emitError(this.name, rc) : null;
  }

  /** Emits with headers and a timestamp (see EmitOptions). */
  emitWith(key: Uint8Array | null, value: Uint8Array | null, opts: EmitOptions): Error | null {
    const h = this.open();
    if (h < 0) return new HostError("output_open", this.name, h);
    let hp: usize = 0;
    let hl: i32 = 0;
    const rec = opts.record;
    if (rec !== null) {
      if (rec.headerCount > 0) {
        hp = rec.headersPtr;
        hl = rec.headersLen;
      }
    } else if (opts.headers !== null) {
      hl = headerList(opts.headers!);
      hp = hdrBuf;
    }
    const rc = emitRaw(h, current, key, value, hp, hl, opts.timestamp);
    return rc < 0 ? emitError(this.name, rc) : null;
  }
}

/** The error of an emit the host refused: inside a batch, the flush of the buffer; outside one, the emit itself. */
function emitError(output: string, rc: i32): HostError {
  return emitLimit > 0 ? new HostError("emit_batch", "", rc) : new HostError("emit", output, rc);
}

/** What emitWith takes besides the key and value. */
export class EmitOptions {
  /** Headers to attach, or null for none. */
  headers: Header[] | null = null;
  /** A record whose headers are passed on as they are (instead of headers). */
  record: Record | null = null;
  /** Milliseconds since the Unix epoch; -1 inherits the input record's timestamp. */
  timestamp: i64 = INHERIT_TIMESTAMP;

  static withHeaders(hs: Header[]): EmitOptions {
    const o = new EmitOptions();
    o.headers = hs;
    return o;
  }

  static withTimestamp(ms: i64): EmitOptions {
    const o = new EmitOptions();
    o.timestamp = ms;
    return o;
  }

  /** Passes r's headers on, as they are. */
  static recordHeaders(r: Record): EmitOptions {
    const o = new EmitOptions();
    o.record = r;
    return o;
  }
}

// Outputs emit() opened by name; the last one used is checked first.
const outputs = new Map<string, Output>();
let lastOutput: Output | null = null;

function outputNamed(name: string): Output {
  const last = lastOutput;
  if (last !== null && last.name == name) return last;
  let o: Output;
  if (outputs.has(name)) {
    o = outputs.get(name);
  } else {
    o = new Output(name);
    outputs.set(name, o);
  }
  lastOutput = o;
  return o;
}

/** Emits key and value to the named output (see Output.emit). */
export function emit(output: string, key: Uint8Array | null, value: Uint8Array | null): Error | null {
  return outputNamed(output).emit(key, value);
}

/** Emits to the named output with headers and a timestamp (see Output.emitWith). */
export function emitWith(output: string, key: Uint8Array | null, value: Uint8Array | null, opts: EmitOptions): Error | null {
  return outputNamed(output).emitWith(key, value, opts);
}

/**
 * Hands the buffered emits to the host now. A stage needs it only beside
 * raw sys.emit or sys.emit_batch calls of its own, to keep their order.
 */
export function flush(): Error | null {
  const rc = flushEmits();
  return rc < 0 ? new HostError("emit_batch", "", rc) : null;
}

/** Writes a header list of hs into hdrBuf and returns its length. */
function headerList(hs: Header[]): i32 {
  let n = 4;
  for (let i = 0; i < hs.length; i++) {
    const h = unchecked(hs[i]);
    n += 8 + h.key.byteLength;
    const v = h.value;
    if (v !== null) n += v.byteLength;
  }
  if (n > hdrCap) {
    hdrBuf = heap.realloc(hdrBuf, n);
    hdrCap = n;
  }
  let p = hdrBuf;
  store<u32>(p, hs.length);
  p += 4;
  for (let i = 0; i < hs.length; i++) {
    const h = unchecked(hs[i]);
    store<u32>(p, h.key.byteLength);
    memory.copy(p + 4, h.key.dataStart, h.key.byteLength);
    p += 4 + h.key.byteLength;
    const v = h.value;
    if (v === null) {
      store<u32>(p, NULL_LENGTH);
      p += 4;
    } else {
      store<u32>(p, v.byteLength);
      memory.copy(p + 4, v.dataStart, v.byteLength);
      p += 4 + v.byteLength;
    }
  }
  return n;
}

/**
 * Emits one record for record index rec: into the buffer when it is on
 * and the entry fits, else straight to the host. hp..hp+hl is a header
 * list or hl is 0. Returns 0 or a negative code.
 */
export function emitRaw(out: i32, rec: i32, key: Uint8Array | null, value: Uint8Array | null, hp: usize, hl: i32, ts: i64): i32 {
  const kl = key === null ? 0 : key.byteLength;
  const vl = value === null ? 0 : value.byteLength;
  const need = EMIT_FIXED_SIZE + kl + vl + hl;
  if (emitLen + need > emitLimit) {
    const rc = flushEmits();
    if (rc < 0) return rc;
    if (need > emitLimit) {
      return sys.emit(out, rec,
        key === null ? 0 : key.dataStart, key === null ? NULL : kl,
        value === null ? 0 : value.dataStart, value === null ? NULL : vl,
        hp, hl, ts);
    }
  }
  const p = emitBuf + <usize>emitLen;
  store<i32>(p, out);
  store<i32>(p, rec, 4);
  store<i64>(p, ts, 8);
  store<u32>(p, key === null ? NULL_LENGTH : <u32>kl, 16);
  store<u32>(p, value === null ? NULL_LENGTH : <u32>vl, 20);
  store<u32>(p, hl, 24);
  let q = p + EMIT_FIXED_SIZE;
  if (kl > 0) {
    memory.copy(q, key!.dataStart, kl);
    q += kl;
  }
  if (vl > 0) {
    memory.copy(q, value!.dataStart, vl);
    q += vl;
  }
  if (hl > 0) memory.copy(q, hp, hl);
  emitLen += need;
  return 0;
}

/** Hands the buffered entries to the host in one emit_batch call. */
export function flushEmits(): i32 {
  if (emitLen == 0) return 0;
  const rc = sys.emit_batch(emitBuf, emitLen);
  emitLen = 0;
  if (rc < 0 && emitErr == 0) emitErr = rc;
  return rc < 0 ? rc : 0;
}

/** Turns the buffer on for a streamrt_process call. */
export function beginEmits(): void {
  emitLen = 0;
  emitLimit = EMIT_BUFFER_SIZE;
  emitErr = 0;
}

/**
 * Ends a streamrt_process call that returns rc: a completed batch hands
 * over what the buffer holds, a failed one drops it. Returns the code of a
 * flush the host refused, or 0.
 */
export function endEmits(rc: i32): i32 {
  let err = 0;
  if (rc == 0) {
    flushEmits();
    err = emitErr;
  }
  emitLen = 0;
  emitLimit = 0;
  return err;
}

/** Where the next entry will go: a record's entries start here. */
export function emitMark(): i32 {
  return emitLen;
}

/**
 * Takes record rec's entries off the tail of the buffer, looking from
 * offset from on, so that a failed record's buffered emits never reach the
 * host. Entries of rec followed by another record's (a batch handler that
 * went back to an earlier record) cannot be taken off alone: then the
 * buffer is handed over as it is, and the host treats the failure as it
 * would have without the buffer.
 */
export function dropEmits(rec: i32, from: i32): void {
  let tail: i32 = -1;
  let stranded = false;
  let p = from;
  while (p < emitLen) {
    const e = emitBuf + <usize>p;
    if (load<i32>(e, 4) != rec) {
      if (tail >= 0) stranded = true;
      tail = -1;
    } else if (tail < 0) {
      tail = p;
    }
    p += entryLen(e);
  }
  if (stranded) {
    flushEmits();
  } else if (tail >= 0) {
    emitLen = tail;
  }
}

function entryLen(e: usize): i32 {
  let n = EMIT_FIXED_SIZE + <i32>load<u32>(e, 24);
  const kl = load<u32>(e, 16);
  const vl = load<u32>(e, 20);
  if (kl != NULL_LENGTH) n += <i32>kl;
  if (vl != NULL_LENGTH) n += <i32>vl;
  return n;
}
