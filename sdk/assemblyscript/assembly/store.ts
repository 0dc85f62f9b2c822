// Stores and tables: keyed state the host keeps, reached by name.

import * as sys from "./sys";
import { Code, NULL } from "./abi";
import { HostError } from "./errors";
import { newView, repoint } from "./bytes";
import { call, current } from "./state";

// The buffer store_get writes into, grown as values need, reused by every
// get; peek's results are views of it.
let scratchBuf: ArrayBuffer = new ArrayBuffer(4096);
let scratch: usize = changetype<usize>(scratchBuf);
let scratchCap: i32 = 4096;
let scratchView: Uint8Array = newView(scratchBuf);

/** Reads key into scratch: its length, or a negative code (NOT_FOUND when absent). */
function readInto(h: i32, key: Uint8Array): i32 {
  for (;;) {
    const n = sys.store_get(h, key.dataStart, key.byteLength, scratch, scratchCap);
    if (n <= scratchCap) return n;
    scratchBuf = new ArrayBuffer(n);
    scratch = changetype<usize>(scratchBuf);
    scratchCap = n;
    scratchView = newView(scratchBuf);
  }
  return unreachable();
}

/** What Store.lookup found: the value (null when absent) or the error. */
export class Lookup {
  constructor(public value: Uint8Array | null, public error: Error | null) {}
  get found(): bool {
    return this.value !== null;
  }
}

/**
 * A store or table the stage declares, opened on first use. Keys and values
 * are never null. A table (materialised by the host from a topic) is read
 * through a Store of its name; put and delete fail with READ_ONLY.
 */
export class Store {
  private handle: i32 = 0;
  private opened: bool = false;

  constructor(public readonly name: string) {}

  /** The store's handle, or a negative code. An undeclared store is asked about once. */
  open(): i32 {
    if (this.opened) return this.handle;
    const b = String.UTF8.encode(this.name);
    const rc = sys.store_open(changetype<usize>(b), b.byteLength);
    if (rc >= 0 || rc == Code.UNKNOWN_STORE) {
      this.handle = rc;
      this.opened = true;
    }
    return rc;
  }

  /**
   * The value of key (a new array), or null when absent. A host error
   * throws, which fails the record (see lookup for one that returns it).
   */
  get(key: Uint8Array): Uint8Array | null {
    const v = this.peek(key);
    return v === null ? null : v.slice();
  }

  /**
   * get without the copy: the value as a view of the SDK's read buffer,
   * valid until the next get, peek or lookup of any store. Nothing is
   * allocated once the buffer is large enough.
   */
  peek(key: Uint8Array): Uint8Array | null {
    const h = this.open();
    if (h < 0) throw new HostError("store_open", this.name, h);
    const n = readInto(h, key);
    if (n == Code.NOT_FOUND) return null;
    if (n < 0) throw new HostError("store_get", this.name, n);
    repoint(scratchView, scratch, n);
    return scratchView;
  }

  /** The value of key (a new array), or its absence, or the host's error; never throws. */
  lookup(key: Uint8Array): Lookup {
    const h = this.open();
    if (h < 0) return new Lookup(null, new HostError("store_open", this.name, h));
    const n = readInto(h, key);
    if (n == Code.NOT_FOUND) return new Lookup(null, null);
    if (n < 0) return new Lookup(null, new HostError("store_get", this.name, n));
    const v = new Uint8Array(n);
    memory.copy(v.dataStart, scratch, n);
    return new Lookup(v, null);
  }

  /** Sets key to value, for the record being handled. */
  put(key: Uint8Array, value: Uint8Array): Error | null {
    const h = this.open();
    if (h < 0) return new HostError("store_open", this.name, h);
    const rc = sys.store_put(h, current, key.dataStart, key.byteLength, value.dataStart, value.byteLength);
    return rc < 0 ? new HostError("store_put", this.name, rc) : null;
  }

  /** Deletes key (absent or not), for the record being handled. */
  delete(key: Uint8Array): Error | null {
    const h = this.open();
    if (h < 0) return new HostError("store_open", this.name, h);
    const rc = sys.store_delete(h, current, key.dataStart, key.byteLength);
    return rc < 0 ? new HostError("store_delete", this.name, rc) : null;
  }

  /**
   * The entries with keys in [start, end) in byte order, null bounds
   * unbounded, as the store was when range was called. Check the Range's
   * error after the loop.
   */
  range(start: Uint8Array | null, end: Uint8Array | null): Range {
    const h = this.open();
    if (h < 0) return Range.failed(new HostError("store_open", this.name, h));
    const it = sys.store_range(h,
      start === null ? 0 : start.dataStart, start === null ? NULL : start.byteLength,
      end === null ? 0 : end.dataStart, end === null ? NULL : end.byteLength);
    if (it < 0) return Range.failed(new HostError("store_range", this.name, it));
    return new Range(this.name, it);
  }

  /** The entries whose keys start with p. */
  prefix(p: Uint8Array): Range {
    return this.range(p.byteLength == 0 ? null : p, prefixEnd(p));
  }
}

/** The first key after every key that starts with p, or null when there is none. */
export function prefixEnd(p: Uint8Array): Uint8Array | null {
  let n = p.byteLength;
  while (n > 0 && p[n - 1] == 0xff) n--;
  if (n == 0) return null;
  const end = p.slice(0, n);
  end[n - 1] = end[n - 1] + 1;
  return end;
}

// Iterator buffers, recycled.
const spare: ArrayBuffer[] = [];

/**
 * An iterator over a store's entries. next() moves to the next entry,
 * whose key and value are views valid until the next call to next();
 * it returns false at the end or on an error, which error then holds.
 * The host closes iterators when the guest call that opened them ends.
 */
export class Range {
  key: Uint8Array;
  value: Uint8Array;
  error: Error | null = null;
  private buf: ArrayBuffer;
  private pos: usize = 0;
  private filled: usize = 0;
  private done: bool = false;
  private call: u32;

  constructor(private store: string, private iter: i32) {
    this.call = call;
    const buf = spare.length > 0 ? spare.pop() : new ArrayBuffer(4096);
    this.buf = buf;
    this.key = newView(buf);
    this.value = newView(buf);
  }

  static failed(err: Error): Range {
    const r = new Range("", -1);
    r.error = err;
    r.done = true;
    return r;
  }

  next(): bool {
    if (this.done) return false;
    if (this.call != call) {
      return this.fail(new Error("streamrt: iterator used after its batch ended"));
    }
    const base = changetype<usize>(this.buf);
    if (this.pos == this.filled) {
      for (;;) {
        const cap = this.buf.byteLength;
        const n = sys.range_next(this.iter, base, cap);
        if (n < 0) return this.fail(new HostError("range_next", this.store, n));
        if (n == 0) {
          this.finish();
          return false;
        }
        if (n > cap) {
          this.grow(n);
          return this.next();
        }
        this.pos = base;
        this.filled = base + <usize>n;
        break;
      }
    }
    const kl = load<u32>(this.pos);
    repoint(this.key, this.pos + 4, kl);
    this.pos += 4 + <usize>kl;
    const vl = load<u32>(this.pos);
    repoint(this.value, this.pos + 4, vl);
    this.pos += 4 + <usize>vl;
    return true;
  }

  private grow(n: i32): void {
    this.buf = new ArrayBuffer(max(n, this.buf.byteLength * 2));
    this.key = newView(this.buf);
    this.value = newView(this.buf);
    this.pos = this.filled = 0;
  }

  private fail(err: Error): bool {
    this.error = err;
    this.finish();
    return false;
  }

  private finish(): void {
    if (!this.done && this.iter >= 0 && this.call == call) sys.range_close(this.iter);
    this.done = true;
    if (this.buf.byteLength <= 64 << 10 && spare.length < 8) spare.push(this.buf);
    this.buf = new ArrayBuffer(0);
  }

  /** Closes the iterator before its end. */
  close(): Error | null {
    if (!this.done) this.finish();
    return null;
  }
}
