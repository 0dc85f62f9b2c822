// The AssemblyScript SDK for streamrt stage modules (host ABI v1, see
// abi/ABI.md and this package's README.md).

export { VERSION, MINOR, NULL, NO_RECORD, INHERIT_TIMESTAMP, Code, Level, codeText } from "./abi";
export { HostError, jsonString } from "./errors";
export { utf8, str } from "./bytes";
export { log, debug, info, warn, error } from "./log";
export { Header, Record, Batch, getStreamTime as streamTime } from "./record";
export { Store, Range, Lookup } from "./store";
export { Output, EmitOptions, emit, emitWith, flush } from "./emit";
export { Param, Query, Response } from "./query";
export { RecordHandler, BatchHandler, QueryHandler, handleRecord, handleBatch, handleQuery, panic } from "./guest";
