// The mixed pipeline's AssemblyScript stage: it reads the Rust stage's
// running view counts (page → count as decimal ASCII) and announces each
// page once, when its count reaches POPULAR: the page goes into store
// popular with the count it reached, and out to output popular.
import { Output, Record, Store, handleRecord, str } from "streamrt";
export * from "streamrt/assembly/exports";

const POPULAR: u64 = 2;

const popular = new Store("popular");
const out = new Output("popular");

function announce(r: Record): Error | null {
  const page = r.key;
  const count = r.value;
  if (page === null || count === null) return new Error("a count needs a page and a value");
  const text = str(count);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return new Error("count \"" + text + "\" is not a number");
  }
  if (text.length == 0 || U64.parseInt(text) < POPULAR) return null;
  if (popular.peek(page) !== null) return null; // announced already
  const err = popular.put(page, count);
  if (err !== null) return err;
  return out.emit(page, count);
}

handleRecord(announce);
