// A test guest for the golden vectors (abi/testdata/*.vec): it reports what
// the SDK decoded. Each record goes to output "out" unchanged (key, value,
// headers, inherited timestamp) and its metadata to output "meta" as the
// key "topic=T partition=P offset=O ts=TS headers=N stream=S". A query is
// answered with its fields, one per line.
import { EmitOptions, Output, Query, Record, Response, handleQuery, handleRecord, streamTime, utf8 } from "streamrt";
export * from "streamrt/assembly/exports";

const out = new Output("out");
const meta = new Output("meta");
const pass = new EmitOptions();

function hex(b: Uint8Array): string {
  const digits = "0123456789abcdef";
  let s = "";
  for (let i = 0; i < b.length; i++) s += digits.charAt(b[i] >> 4) + digits.charAt(b[i] & 15);
  return s;
}

handleRecord((r: Record): Error | null => {
  pass.record = r;
  const err = out.emitWith(r.key, r.value, pass);
  if (err !== null) return err;
  return meta.emit(utf8("topic=" + r.topic + " partition=" + r.partition.toString() + " offset=" + r.offset.toString() +
    " ts=" + r.timestamp.toString() + " headers=" + r.headerCount.toString() + " stream=" + streamTime().toString()), null);
});

handleQuery((q: Query): Response => {
  let s = "partition=" + q.partition.toString() + "\nmethod=" + q.method + "\nroute=" + q.route + "\npath=" + q.path + "\nraw_query=" + q.rawQuery + "\n";
  for (let i = 0; i < q.params.length; i++) s += "param " + q.params[i].name + "=" + q.params[i].value + "\n";
  s += "body=" + hex(q.body) + "\n";
  return Response.text(s);
});
