// Query handlers: HTTP requests to the routes the app declares under
// query.routes, answered through the respond host function (ABI 1.1).

import * as sys from "./sys";
import { jsonString } from "./errors";
import { copyOf, utf8 } from "./bytes";

/** A path parameter of a query. */
export class Param {
  constructor(public name: string, public value: string) {}
}

/** One HTTP request, routed to the instance that owns its key's partition. */
export class Query {
  method: string = "";
  /** The route's path pattern as configured, such as /charts/{genre}. */
  route: string = "";
  path: string = "";
  /** The store partition the request was routed to, or -1 for a route without a store. */
  partition: i32 = -1;
  /** The query string, without "?". */
  rawQuery: string = "";
  params: Param[] = [];
  body: Uint8Array = new Uint8Array(0);

  /** The path parameter name, or "" when there is none. */
  param(name: string): string {
    for (let i = 0; i < this.params.length; i++) {
      if (this.params[i].name == name) return this.params[i].value;
    }
    return "";
  }

  /** The query string's pairs, decoded as Go's url.ParseQuery does (malformed pairs dropped). */
  pairs(): Param[] {
    const out = new Array<Param>(0);
    const parts = this.rawQuery.split("&");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      if (part.length == 0 || part.includes(";")) continue;
      const eq = part.indexOf("=");
      const k = unescapeQuery(eq < 0 ? part : part.substring(0, eq));
      const v = unescapeQuery(eq < 0 ? "" : part.substring(eq + 1));
      if (k === null || v === null) continue;
      out.push(new Param(k, v));
    }
    return out;
  }

  /** The values of the query string's name, in order. */
  values(name: string): string[] {
    const out = new Array<string>(0);
    const ps = this.pairs();
    for (let i = 0; i < ps.length; i++) if (ps[i].name == name) out.push(ps[i].value);
    return out;
  }

  /** The first value of the query string's name, or null. */
  value(name: string): string | null {
    const vs = this.values(name);
    return vs.length > 0 ? vs[0] : null;
  }
}

/** Decodes %XX and "+" as Go's url.QueryUnescape does; null on a bad escape. */
export function unescapeQuery(s: string): string | null {
  const b = String.UTF8.encode(s);
  const n = b.byteLength;
  const src = changetype<usize>(b);
  const out = new Uint8Array(n);
  let j = 0;
  for (let i = 0; i < n; i++) {
    const c = load<u8>(src + i);
    if (c == 0x25) {
      if (i + 2 >= n) return null;
      const h = hexVal(load<u8>(src + i + 1));
      const l = hexVal(load<u8>(src + i + 2));
      if (h < 0 || l < 0) return null;
      out[j++] = <u8>((h << 4) | l);
      i += 2;
    } else if (c == 0x2b) {
      out[j++] = 0x20;
    } else {
      out[j++] = c;
    }
  }
  return String.UTF8.decodeUnsafe(out.dataStart, j);
}

function hexVal(c: u8): i32 {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** A query handler's answer. A status outside 200–599 is answered 500. */
export class Response {
  constructor(public status: i32 = 200, public contentType: string = "", public body: Uint8Array = new Uint8Array(0)) {}

  static text(s: string): Response {
    return new Response(200, "text/plain; charset=utf-8", utf8(s));
  }

  static json(s: string): Response {
    return new Response(200, "application/json", utf8(s));
  }

  /** status with {"error": msg}. */
  static error(status: i32, msg: string): Response {
    return new Response(status, "application/json", utf8("{\"error\":" + jsonString(msg) + "}"));
  }
}

/** Decodes a query request at ptr..ptr+len into q; an error's text or null. */
export function decodeQuery(ptr: usize, len: i32, q: Query): string | null {
  const end = ptr + <usize>len;
  let p = ptr;
  if (end - p < 4) return "streamrt: malformed query request";
  q.partition = load<i32>(p);
  p += 4;
  const strs = new Array<string>(4);
  for (let i = 0; i < 4; i++) {
    if (end - p < 4) return "streamrt: malformed query request";
    const n = <usize>load<u32>(p);
    p += 4;
    if (n > end - p) return "streamrt: malformed query request";
    strs[i] = String.UTF8.decodeUnsafe(p, n);
    p += n;
  }
  q.method = strs[0];
  q.route = strs[1];
  q.path = strs[2];
  q.rawQuery = strs[3];
  if (end - p < 4) return "streamrt: malformed query request";
  const np = load<u32>(p);
  p += 4;
  const params = new Array<Param>(0);
  for (let i: u32 = 0; i < np; i++) {
    const kv = new Array<string>(2);
    for (let j = 0; j < 2; j++) {
      if (end - p < 4) return "streamrt: malformed query request";
      const n = <usize>load<u32>(p);
      p += 4;
      if (n > end - p) return "streamrt: malformed query request";
      kv[j] = String.UTF8.decodeUnsafe(p, n);
      p += n;
    }
    params.push(new Param(kv[0], kv[1]));
  }
  q.params = params;
  if (end - p < 4) return "streamrt: malformed query request";
  const bl = <usize>load<u32>(p);
  p += 4;
  if (bl != end - p) return "streamrt: malformed query request";
  q.body = copyOf(p, <i32>bl);
  return null;
}

/** Answers with status and content type and body; the host's result. */
export function respond(status: i32, contentType: string, body: Uint8Array): i32 {
  const ct = String.UTF8.encode(contentType);
  return sys.respond(status, changetype<usize>(ct), ct.byteLength, body.dataStart, body.byteLength);
}

/** Answers status with {"error": msg}. */
export function respondError(status: i32, msg: string): void {
  const r = Response.error(status, msg);
  respond(r.status, r.contentType, r.body);
}
