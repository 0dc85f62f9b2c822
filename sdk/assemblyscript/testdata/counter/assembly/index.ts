// A test guest: counts records per key in store "counts" (decimal ASCII)
// and emits key → new count to output "out"; a record with a null key
// fails. The AssemblyScript twin of the Go and Rust counter guests, for the
// host's benchmarks.
import { Output, Record, Store, handleRecord } from "streamrt";
export * from "streamrt/assembly/exports";

const counts = new Store("counts");
const out = new Output("out");

// The new count, formatted into a reused buffer; put and emit copy it.
const num = new Uint8Array(20);

function count(r: Record): Error | null {
  const key = r.key;
  if (key === null) return new Error("null key");
  const v = counts.peek(key);
  let n: u64 = 0;
  if (v !== null) {
    if (v.length == 0) return new Error("count is empty");
    for (let i = 0; i < v.length; i++) {
      const c = unchecked(v[i]);
      if (c < 0x30 || c > 0x39) return new Error("count is not a number");
      n = n * 10 + (c - 0x30);
    }
  }
  n++;
  let i = num.length;
  do {
    unchecked((num[--i] = <u8>(0x30 + n % 10)));
    n /= 10;
  } while (n != 0);
  const next = num.subarray(i);
  const err = counts.put(key, next);
  if (err !== null) return err;
  return out.emit(key, next);
}

handleRecord(count);
