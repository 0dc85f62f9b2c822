// Conversions between strings and bytes.

/** The UTF-8 encoding of s. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** b decoded as UTF-8 (invalid sequences become U+FFFD). */
export function str(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.byteLength);
}

/** A copy of len bytes at ptr. */
export function copyOf(ptr: usize, len: i32): Uint8Array {
  const out = new Uint8Array(len);
  memory.copy(out.dataStart, ptr, len);
  return out;
}

/** A view object that a reader re-points at each entry it reads. */
export function newView(buf: ArrayBuffer): Uint8Array {
  return Uint8Array.wrap(buf, 0, 0);
}

/** Points view at len bytes at ptr, which must lie in view's buffer. */
// @ts-ignore: decorator
@inline
export function repoint(view: Uint8Array, ptr: usize, len: i32): void {
  store<usize>(changetype<usize>(view), ptr, offsetof<Uint8Array>("dataStart"));
  store<i32>(changetype<usize>(view), len, offsetof<Uint8Array>("byteLength"));
}
