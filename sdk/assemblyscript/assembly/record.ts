// Records of a batch, decoded from the buffer the host wrote into guest
// memory.

import { FLAG_KEY, FLAG_VALUE, NULL_LENGTH, RECORD_FIXED_SIZE } from "./abi";
import { copyOf, newView, repoint } from "./bytes";
import { setCurrent, streamTime } from "./state";

/** A record header. A null value is distinct from an empty one. */
export class Header {
  constructor(public key: Uint8Array, public value: Uint8Array | null) {}
}

/**
 * One input record. Its key and value are views of the batch in guest
 * memory, valid until the handler returns (in a per-record handler, the
 * SDK re-points the same Record at the next record): slice() what you keep.
 */
export class Record {
  /** The record's index in its batch, which the host attributes effects by. */
  index: i32 = 0;
  topic: string = "";
  partition: i32 = 0;
  offset: i64 = 0;
  /** Milliseconds since the Unix epoch. */
  timestamp: i64 = 0;
  /** The key, or null for a null key (an empty key is an empty array). */
  key: Uint8Array | null = null;
  /** The value, or null for a null value (a tombstone). */
  value: Uint8Array | null = null;
  /** The number of headers. */
  headerCount: i32 = 0;
  /** The record's header section in guest memory: count:u32 header*, a header list as emit takes it. */
  headersPtr: usize = 0;
  headersLen: i32 = 0;

  keyView: Uint8Array;
  valueView: Uint8Array;

  constructor(buf: ArrayBuffer) {
    this.keyView = newView(buf);
    this.valueView = newView(buf);
  }

  /** The record's headers, decoded (a new array on each call). */
  headers(): Header[] {
    const out = new Array<Header>(0);
    let p = this.headersPtr + 4;
    for (let i = 0; i < this.headerCount; i++) {
      const kl = load<u32>(p);
      const key = copyOf(p + 4, kl);
      p += 4 + kl;
      const vl = load<u32>(p);
      p += 4;
      if (vl == NULL_LENGTH) {
        out.push(new Header(key, null));
      } else {
        out.push(new Header(key, copyOf(p, vl)));
        p += vl;
      }
    }
    return out;
  }

  /** The first header named name, or null. */
  header(name: string): Header | null {
    const hs = this.headers();
    for (let i = 0; i < hs.length; i++) {
      if (String.UTF8.decode(hs[i].key.buffer) == name) return hs[i];
    }
    return null;
  }
}

/** The stream time: the highest record timestamp the task has seen, this batch included; -1 when unknown. */
export function getStreamTime(): i64 {
  return streamTime;
}

/**
 * A whole batch, for a batch handler. Effects belong to the batch as a
 * whole, except after at(i), which attributes them to record i until the
 * next at() or release().
 */
export class Batch {
  constructor(public readonly records: Record[], public readonly streamTime: i64) {}

  get length(): i32 {
    return this.records.length;
  }

  /** Record i, without changing attribution. */
  record(i: i32): Record {
    return this.records[i];
  }

  /** Record i; the effects that follow belong to it. */
  at(i: i32): Record {
    const r = this.records[i];
    setCurrent(i);
    return r;
  }

  /** The effects that follow belong to the batch as a whole. */
  release(): void {
    setCurrent(-1);
  }

  /** Fails record i with msg without failing the batch (see the README). */
  fail(i: i32, msg: string): void {
    failBatchRecord(i, msg);
  }
}

// Set by guest.ts, which owns the emit buffer and record_error.
let failHook: (rec: i32, msg: string) => void = (rec: i32, msg: string): void => {};

export function setFailHook(f: (rec: i32, msg: string) => void): void {
  failHook = f;
}

function failBatchRecord(i: i32, msg: string): void {
  failHook(i, msg);
}

/**
 * Reads records from a batch at ptr..end. Every length is checked against
 * the batch's end before anything is read.
 */
export class BatchReader {
  count: u32 = 0;
  streamTime: i64 = -1;
  topics: string[] = [];
  pos: usize = 0;
  end: usize = 0;
  error: string | null = null;

  reset(ptr: usize, len: i32): bool {
    this.pos = ptr;
    this.end = ptr + <usize>len;
    this.error = null;
    if (len < 14) return this.fail("batch shorter than its header");
    this.count = load<u32>(ptr);
    this.streamTime = load<i64>(ptr, 4);
    const nt = <i32>load<u16>(ptr, 12);
    this.pos = ptr + 14;
    const topics = new Array<string>(nt);
    for (let i = 0; i < nt; i++) {
      if (this.pos + 2 > this.end) return this.fail("topic table runs past the batch");
      const tl = <usize>load<u16>(this.pos);
      if (this.pos + 2 + tl > this.end) return this.fail("topic table runs past the batch");
      topics[i] = String.UTF8.decodeUnsafe(this.pos + 2, tl);
      this.pos += 2 + tl;
    }
    this.topics = topics;
    return true;
  }

  fail(msg: string): bool {
    this.error = "streamrt: malformed batch: " + msg;
    return false;
  }

  /** Decodes the next record into r; false at a malformed record (see error). */
  next(r: Record, index: i32): bool {
    let p = this.pos;
    const end = this.end;
    if (p + <usize>RECORD_FIXED_SIZE + 4 > end) return this.fail("record " + index.toString() + " runs past the batch");
    const flags = load<u8>(p);
    const topic = <i32>load<u16>(p, 1);
    if (topic >= this.topics.length) return this.fail("record " + index.toString() + " names topic " + topic.toString() + " of " + this.topics.length.toString());
    r.index = index;
    r.topic = unchecked(this.topics[topic]);
    r.partition = load<i32>(p, 3);
    r.offset = load<i64>(p, 7);
    r.timestamp = load<i64>(p, 15);
    p += <usize>RECORD_FIXED_SIZE;
    const kl = <usize>load<u32>(p);
    p += 4;
    if (kl > end - p || end - p - kl < 4) return this.fail("record " + index.toString() + ": key runs past the batch");
    if (flags & FLAG_KEY) {
      repoint(r.keyView, p, <i32>kl);
      r.key = r.keyView;
    } else {
      if (kl != 0) return this.fail("record " + index.toString() + ": null key with a length");
      r.key = null;
    }
    p += kl;
    const vl = <usize>load<u32>(p);
    p += 4;
    if (vl > end - p || end - p - vl < 4) return this.fail("record " + index.toString() + ": value runs past the batch");
    if (flags & FLAG_VALUE) {
      repoint(r.valueView, p, <i32>vl);
      r.value = r.valueView;
    } else {
      if (vl != 0) return this.fail("record " + index.toString() + ": null value with a length");
      r.value = null;
    }
    p += vl;
    const nh = load<u32>(p);
    r.headersPtr = p;
    p += 4;
    for (let i: u32 = 0; i < nh; i++) {
      if (end - p < 4) return this.fail("record " + index.toString() + ": headers run past the batch");
      const hk = <usize>load<u32>(p);
      p += 4;
      if (hk > end - p || end - p - hk < 4) return this.fail("record " + index.toString() + ": headers run past the batch");
      p += hk;
      const hv = load<u32>(p);
      p += 4;
      if (hv != NULL_LENGTH) {
        if (<usize>hv > end - p) return this.fail("record " + index.toString() + ": headers run past the batch");
        p += <usize>hv;
      }
    }
    r.headerCount = <i32>nh;
    r.headersLen = <i32>(p - r.headersPtr);
    this.pos = p;
    return true;
  }
}
