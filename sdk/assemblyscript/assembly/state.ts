// The instance's state. A Wasm instance runs one call at a time and the host
// gives each task its own instance, so this is plain module state.

import { NO_RECORD } from "./abi";

/** The record index stamped on effects, or NO_RECORD. */
export let current: i32 = NO_RECORD;
/** The highest record timestamp the task has seen, this batch included. */
export let streamTime: i64 = -1;
/** Counts guest calls; an iterator remembers the call that opened it. */
export let call: u32 = 0;
/** Whether a streamrt_query call is running. */
export let inQuery: bool = false;
/** Whether a guest call (streamrt_process or streamrt_query) is running. */
export let inCall: bool = false;

export function setCurrent(rec: i32): void {
  current = rec;
}

export function setStreamTime(t: i64): void {
  streamTime = t;
}

export function beginCall(query: bool): void {
  call++;
  current = NO_RECORD;
  inQuery = query;
  inCall = true;
}

export function endCall(): void {
  current = NO_RECORD;
  inQuery = false;
  inCall = false;
}
