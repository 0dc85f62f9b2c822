import { codeText } from "./abi";

/**
 * A host function's error result: the function, the store or output the
 * call was about, and the negative code. Its message is the Go and Rust
 * SDKs' word for word, such as
 * `streamrt: store_open "counts": unknown store`.
 */
export class HostError extends Error {
  constructor(public fn: string, public target: string, public code: i32) {
    super(fn == "emit_batch" ? "streamrt: emit_batch: " + codeText(code) : "streamrt: " + fn + " " + quote(target) + ": " + codeText(code));
    this.name = "HostError";
  }
}

/** s in double quotes, with quotes, backslashes and control characters escaped (as Go's strconv.Quote does for ASCII). */
export function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x09) out += "\\t";
    else if (c == 0x0d) out += "\\r";
    else if (c < 0x20 || c == 0x7f) out += "\\x" + hex2(c);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

function hex2(c: i32): string {
  const digits = "0123456789abcdef";
  return digits.charAt((c >> 4) & 15) + digits.charAt(c & 15);
}

/** s as a JSON string literal. */
export function jsonString(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c == 0x0a) out += "\\n";
    else if (c == 0x09) out += "\\t";
    else if (c == 0x0d) out += "\\r";
    else if (c < 0x20) out += "\\u00" + hex2(c);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}
