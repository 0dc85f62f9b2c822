// The clickcount stage in AssemblyScript: it counts clicks per page, as
// examples/clickcount/guest does in Go and examples/clickcount-rust/stage
// in Rust.
//
// Input: topic clicks, keyed by page. State: store click-counts, page →
// count as decimal ASCII. Output: counts (the app's configuration maps it
// to topic page-counts), page → the new count. A click with a null key
// fails, which hands it to the stage's error policy.
import { Output, Record, Store, handleRecord, str, utf8 } from "streamrt";
export * from "streamrt/assembly/exports";

const counts = new Store("click-counts");
const out = new Output("counts");

/** Counts one click. */
export function count(r: Record): Error | null {
  const page = r.key;
  if (page === null) return new Error("click without a page (null key)");
  let n: u64 = 0;
  const v = counts.get(page);
  if (v !== null) {
    const text = str(v);
    if (!isCount(text)) return new Error("count of page \"" + str(page) + "\": \"" + text + "\" is not a number");
    n = U64.parseInt(text);
  }
  const next = utf8((n + 1).toString());
  const err = counts.put(page, next);
  if (err !== null) return err;
  return out.emit(page, next);
}

function isCount(s: string): bool {
  if (s.length == 0 || s.length > 19) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

handleRecord(count);
