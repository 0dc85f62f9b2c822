// A test guest built against a future host ABI: it imports emit from
// streamrt_v2, as a module built with a v2 SDK would. A v1 host must refuse
// it at load, naming both versions.
import { Record, handleRecord } from "streamrt";
export * from "streamrt/assembly/exports";

@external("streamrt_v2", "emit")
declare function emitV2(output: i32, rec: i32, keyPtr: usize, keyLen: i32): i32;

handleRecord((r: Record): Error | null => {
  const k = r.key;
  if (k !== null) emitV2(0, r.index, k.dataStart, k.length);
  return null;
});
