// The raw host functions of ABI v1 (abi/ABI.md), imported from
// "streamrt_v1". Pointers and lengths describe guest memory; a length of -1
// (NULL) means null where the ABI allows it. Results are as the ABI says:
// negative ones are error codes (see Code). The rest of the SDK is built on
// these; a stage rarely needs them.

@external("streamrt_v1", "store_open")
export declare function store_open(namePtr: usize, nameLen: i32): i32;

@external("streamrt_v1", "store_get")
export declare function store_get(store: i32, keyPtr: usize, keyLen: i32, bufPtr: usize, bufCap: i32): i32;

@external("streamrt_v1", "store_put")
export declare function store_put(store: i32, rec: i32, keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32): i32;

@external("streamrt_v1", "store_delete")
export declare function store_delete(store: i32, rec: i32, keyPtr: usize, keyLen: i32): i32;

@external("streamrt_v1", "store_range")
export declare function store_range(store: i32, startPtr: usize, startLen: i32, endPtr: usize, endLen: i32): i32;

@external("streamrt_v1", "range_next")
export declare function range_next(iter: i32, bufPtr: usize, bufCap: i32): i32;

@external("streamrt_v1", "range_close")
export declare function range_close(iter: i32): i32;

@external("streamrt_v1", "output_open")
export declare function output_open(namePtr: usize, nameLen: i32): i32;

@external("streamrt_v1", "emit")
export declare function emit(output: i32, rec: i32, keyPtr: usize, keyLen: i32, valPtr: usize, valLen: i32, hdrPtr: usize, hdrLen: i32, ts: i64): i32;

/** Emits the entries at ptr..ptr+len (ABI 1.2). */
@external("streamrt_v1", "emit_batch")
export declare function emit_batch(ptr: usize, len: i32): i32;

@external("streamrt_v1", "log")
export declare function log(level: i32, msgPtr: usize, msgLen: i32): void;

@external("streamrt_v1", "record_error")
export declare function record_error(rec: i32, msgPtr: usize, msgLen: i32): i32;

/** Answers the query being handled; only inside streamrt_query, once (ABI 1.1). */
@external("streamrt_v1", "respond")
export declare function respond(status: i32, ctypePtr: usize, ctypeLen: i32, bodyPtr: usize, bodyLen: i32): i32;
