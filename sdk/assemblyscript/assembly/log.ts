import * as sys from "./sys";
import { Level } from "./abi";

/** Logs msg through the host at level (Level.DEBUG .. Level.ERROR). */
export function log(level: i32, msg: string): void {
  const b = String.UTF8.encode(msg);
  sys.log(level, changetype<usize>(b), b.byteLength);
}

export function debug(msg: string): void { log(Level.DEBUG, msg); }
export function info(msg: string): void { log(Level.INFO, msg); }
export function warn(msg: string): void { log(Level.WARN, msg); }
export function error(msg: string): void { log(Level.ERROR, msg); }
