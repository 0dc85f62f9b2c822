// A test guest with a batch handler. Each record's value is a word:
// "fail" fails that record alone (Batch.fail), "boom" fails the whole batch
// (the host then runs its records one per call), anything else is put into
// store "seen" under the record's key and emitted to output "out", both for
// the record (Batch.at). Last, for the batch as a whole, it emits the key
// "batch" with the number of records.
import { Batch, Output, Store, handleBatch, str, utf8 } from "streamrt";
export * from "streamrt/assembly/exports";

const seen = new Store("seen");
const out = new Output("out");

handleBatch((b: Batch): Error | null => {
  for (let i = 0; i < b.length; i++) {
    const r = b.at(i);
    const key = r.key;
    const value = r.value;
    if (key === null || value === null) {
      b.fail(i, "null key or value");
      continue;
    }
    const word = str(value);
    if (word == "boom") return new Error("boom at record " + i.toString());
    let err = seen.put(key, value);
    if (err === null) err = out.emit(key, value);
    if (err !== null) return err;
    if (word == "fail") b.fail(i, "record " + i.toString() + " failed");
  }
  b.release();
  return out.emit(utf8("batch"), utf8(b.length.toString()));
});
