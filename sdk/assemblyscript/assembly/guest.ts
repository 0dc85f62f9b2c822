// The guest side of a call: the input buffer, decoding, calling the
// handler, attributing effects to records, reporting failures, and the
// abort hook that turns a throw into a failed record.

import * as sys from "./sys";
import { Level, NO_RECORD } from "./abi";
import { HostError } from "./errors";
import { log } from "./log";
import { beginCall, current, endCall, inCall, inQuery, setCurrent, setStreamTime } from "./state";
import { Batch, BatchReader, Record, setFailHook } from "./record";
import { beginEmits, dropEmits, emitMark, endEmits } from "./emit";
import { Query, Response, decodeQuery, respond, respondError } from "./query";

/** A per-record handler: null, or the error that fails the record. */
export type RecordHandler = (r: Record) => Error | null;
/** A batch handler: null, or the error that fails the batch. */
export type BatchHandler = (b: Batch) => Error | null;
/** A query handler. */
export type QueryHandler = (q: Query) => Response;

let onRecord: RecordHandler | null = null;
let onBatch: BatchHandler | null = null;
let onQuery: QueryHandler | null = null;

/** Registers the stage's per-record handler; call it once, at the top level of the entry file. */
export function handleRecord(fn: RecordHandler): void {
  if (onRecord !== null || onBatch !== null) panic("streamrt: a handler is already registered");
  onRecord = fn;
}

/** Registers the stage's batch handler, instead of a per-record one. */
export function handleBatch(fn: BatchHandler): void {
  if (onRecord !== null || onBatch !== null) panic("streamrt: a handler is already registered");
  onBatch = fn;
}

/** Registers the handler of the app's query routes that name this stage. */
export function handleQuery(fn: QueryHandler): void {
  if (onQuery !== null) panic("streamrt: a query handler is already registered");
  onQuery = fn;
}

// The streamrt_buffer, grown with headroom and reused for every call. It is
// an ArrayBuffer so that records' keys and values can be views of it.
let input: ArrayBuffer = new ArrayBuffer(0);
let rec: Record = new Record(input);
const reader = new BatchReader();

const MAX_INPUT: i32 = (1 << 30) - 64;

/** Backs streamrt_buffer: the address of a buffer of at least size bytes, or 0. */
export function buffer(size: i32): usize {
  if (size < 0 || size > MAX_INPUT) return 0;
  if (size > input.byteLength || input.byteLength == 0) {
    let n = max(size, input.byteLength * 2);
    n = min(max(n, 64 << 10), MAX_INPUT);
    input = new ArrayBuffer(n);
    rec = new Record(input);
  }
  return changetype<usize>(input);
}

function inInput(ptr: usize, len: i32): bool {
  const base = changetype<usize>(input);
  return input.byteLength > 0 && len >= 0 && ptr >= base && ptr - base <= <usize>input.byteLength && <usize>len <= <usize>input.byteLength - (ptr - base);
}

/** Reports that record rec failed with msg. */
export function recordError(r: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  sys.record_error(r, changetype<usize>(b), b.byteLength);
}

/** Reports msg as the reason the batch failed; returns streamrt_process's non-zero result. */
function failBatch(msg: string): i32 {
  recordError(NO_RECORD, msg);
  return 1;
}

function failRecord(r: i32, from: i32, msg: string): void {
  dropEmits(r, from);
  recordError(r, msg);
}

setFailHook((r: i32, msg: string): void => {
  failRecord(r, 0, msg);
});

/** Backs streamrt_process. */
export function process(ptr: usize, len: i32): i32 {
  beginCall(false);
  beginEmits();
  let rc: i32;
  if (!inInput(ptr, len)) {
    rc = failBatch("streamrt: streamrt_process: batch lies outside the streamrt_buffer");
  } else if (!reader.reset(ptr, len)) {
    rc = failBatch(reader.error!);
  } else {
    setStreamTime(reader.streamTime);
    if (onRecord !== null) rc = runRecords(onRecord!);
    else if (onBatch !== null) rc = runBatch(onBatch!);
    else rc = failBatch("streamrt: no handler registered (call handleRecord or handleBatch)");
  }
  const err = endEmits(rc);
  if (err < 0) rc = failBatch(new HostError("emit_batch", "", err).message);
  endCall();
  collect();
  return rc;
}

function runRecords(fn: RecordHandler): i32 {
  const r = rec;
  const n = <i32>reader.count;
  for (let i = 0; i < n; i++) {
    if (!reader.next(r, i)) return failBatch(reader.error!);
    setCurrent(i);
    const mark = emitMark();
    const err = fn(r);
    if (err !== null) failRecord(i, mark, err.message);
    setCurrent(NO_RECORD);
  }
  if (reader.pos != reader.end) return failBatch("streamrt: malformed batch: bytes after the last record");
  return 0;
}

function runBatch(fn: BatchHandler): i32 {
  const n = <i32>reader.count;
  // A record takes at least its fixed part and three length words.
  if (<usize>n > (reader.end - reader.pos) / 35) {
    return failBatch("streamrt: batch header claims " + n.toString() + " records, more than its size allows");
  }
  const records = new Array<Record>(n);
  for (let i = 0; i < n; i++) {
    const r = new Record(input);
    if (!reader.next(r, i)) return failBatch(reader.error!);
    records[i] = r;
  }
  if (reader.pos != reader.end) return failBatch("streamrt: malformed batch: bytes after the last record");
  const err = fn(new Batch(records, reader.streamTime));
  setCurrent(NO_RECORD);
  return err !== null ? failBatch(err.message) : 0;
}

/** Backs streamrt_query: answers through respond and returns 0. */
export function query(ptr: usize, len: i32): i32 {
  beginCall(true);
  if (!inInput(ptr, len)) {
    respondError(500, "streamrt: streamrt_query: request lies outside the streamrt_buffer");
  } else if (onQuery === null) {
    respondError(501, "this module registers no query handler (handleQuery)");
  } else {
    const q = new Query();
    const bad = decodeQuery(ptr, len, q);
    if (bad !== null) {
      respondError(500, bad);
    } else {
      const resp = onQuery!(q);
      const rc = respond(resp.status, resp.contentType, resp.body);
      if (rc < 0) respondError(500, new HostError("respond", "status " + resp.status.toString(), rc).message);
    }
  }
  endCall();
  collect();
  return 0;
}

/** Backs streamrt_init: refuses an instance that registered no handler. */
export function init(): i32 {
  if (onRecord === null && onBatch === null) {
    log(Level.ERROR, "streamrt: the module registers no handler: call handleRecord or handleBatch at the top level of its entry file");
    return 1;
  }
  return 0;
}

// Memory pages after the last collection.
let collectedAt: i32 = 0;

/**
 * Frees what calls allocated and no longer use, once garbage has made the
 * memory grow since the last collection (so a stage whose garbage fits in
 * the free memory does not pay for a collection every call). The SDK
 * builds with AssemblyScript's minimal runtime, which collects only when
 * asked and sees only globals: the end of a guest call, when no frame
 * holds a reference, is when it is safe.
 */
function collect(): void {
  if (memory.size() > collectedAt) {
    __collect();
    collectedAt = memory.size();
  }
}

let aborting = false;

/**
 * The abort hook (asconfig.json's "use": abort=...): a throw, a failed
 * assertion or running out of memory. The record being handled fails with
 * "panic: " and the message (the batch, outside a record), the location
 * goes to the host's log, and the instance traps: the host then runs the
 * batch's records one per call, giving that record the stage's error
 * policy. In a query handler, the answer is a 500 instead.
 */
export function abort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (aborting) unreachable();
  aborting = true;
  const text = "panic: " + (message !== null ? message : "abort");
  let whose = "module start";
  if (inQuery) whose = "query handler";
  else if (current != NO_RECORD) whose = "record " + current.toString();
  else if (inCall) whose = "batch handler";
  let at = "";
  if (fileName !== null) at = " (at " + fileName + ":" + line.toString() + ":" + column.toString() + ")";
  log(Level.ERROR, "streamrt: " + whose + ": " + text + at);
  if (inQuery) respondError(500, text);
  else recordError(current, text);
  unreachable();
}

/** Fails the record being handled with msg the way a throw does: it never returns. */
export function panic(msg: string): void {
  abort(msg, null, 0, 0);
}
