// A test guest: emits every record unchanged (key, value, headers,
// timestamp inherited) to output "out". The AssemblyScript twin of the Go
// and Rust identity guests, for the host's tests and benchmarks.
import { EmitOptions, Output, Record, handleRecord } from "streamrt";
export * from "streamrt/assembly/exports";

const out = new Output("out");
// One options object, re-pointed at each record: nothing is allocated per
// record.
const pass = new EmitOptions();

handleRecord((r: Record): Error | null => {
  pass.record = r;
  return out.emitWith(r.key, r.value, pass);
});
