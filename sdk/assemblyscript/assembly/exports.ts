// The exports the host requires. A stage's entry file re-exports them:
//
//   export * from "streamrt/assembly/exports";

import { VERSION } from "./abi";
import { buffer, init, process, query } from "./guest";

export function streamrt_abi_version(): i32 {
  return VERSION;
}

export function streamrt_init(): i32 {
  return init();
}

export function streamrt_buffer(size: i32): usize {
  return buffer(size);
}

export function streamrt_process(ptr: usize, len: i32): i32 {
  return process(ptr, len);
}

export function streamrt_query(ptr: usize, len: i32): i32 {
  return query(ptr, len);
}
