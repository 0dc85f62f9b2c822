// The constants and encodings of host ABI v1 (abi/ABI.md), mirroring the Go
// package github.com/streamrt/streamrt/abi.

/** The ABI version this SDK implements. */
export const VERSION: i32 = 1;
/** The minor version: 1.1 added query handlers, 1.2 emit_batch. */
export const MINOR: i32 = 2;
/** The length that marks a null key, value or range bound. */
export const NULL: i32 = -1;
/** The record index of effects that belong to the batch as a whole. */
export const NO_RECORD: i32 = -1;
/** The timestamp that makes emit inherit the input record's. */
export const INHERIT_TIMESTAMP: i64 = -1;
/** Size of a batch header with an empty topic table. */
export const BATCH_HEADER_SIZE: i32 = 4 + 8 + 2;
/** Size of a record's fixed part, before its key. */
export const RECORD_FIXED_SIZE: i32 = 1 + 2 + 4 + 8 + 8;
/** Size of an emit_batch entry's fixed part, before its key. */
export const EMIT_FIXED_SIZE: i32 = 4 + 4 + 8 + 4 + 4 + 4;
/** A header value length that marks a null value. */
export const NULL_LENGTH: u32 = 0xffffffff;

export const FLAG_KEY: u8 = 1;
export const FLAG_VALUE: u8 = 2;

/** Log levels of the log host function. */
export namespace Level {
  export const DEBUG: i32 = 0;
  export const INFO: i32 = 1;
  export const WARN: i32 = 2;
  export const ERROR: i32 = 3;
}

/** The host functions' status codes. Their values never change. */
export namespace Code {
  export const OK: i32 = 0;
  export const NOT_FOUND: i32 = -1;
  export const UNKNOWN_STORE: i32 = -2;
  export const UNKNOWN_OUTPUT: i32 = -3;
  export const READ_ONLY: i32 = -4;
  export const INVALID: i32 = -5;
  export const BAD_ITERATOR: i32 = -6;
  export const TOO_LARGE: i32 = -7;
  export const INTERNAL: i32 = -8;
  export const NOT_ALLOWED: i32 = -9;
}

/** The text of a status code, as the Go and Rust SDKs write it. */
export function codeText(code: i32): string {
  switch (code) {
    case Code.OK: return "ok";
    case Code.NOT_FOUND: return "not found";
    case Code.UNKNOWN_STORE: return "unknown store";
    case Code.UNKNOWN_OUTPUT: return "unknown output";
    case Code.READ_ONLY: return "store is read-only";
    case Code.INVALID: return "invalid argument";
    case Code.BAD_ITERATOR: return "bad iterator";
    case Code.TOO_LARGE: return "too large";
    case Code.INTERNAL: return "host internal error";
    case Code.NOT_ALLOWED: return "not allowed";
  }
  return "code " + code.toString();
}
