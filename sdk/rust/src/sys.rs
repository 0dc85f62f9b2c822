//! The raw host functions of ABI v1, as `abi/ABI.md` declares them.
//!
//! The rest of the SDK is built on these; a stage rarely needs them. They are
//! public for what the safe API deliberately hides, such as conformance
//! tests that pin the host's answer to a too-small buffer. Pointers and
//! lengths describe guest memory; a length of `-1` ([`crate::abi::NULL`])
//! means null where the ABI allows it. Results are as the ABI says: negative
//! ones are [`crate::abi::Code`]s.
//!
//! On `wasm32` they are the module's imports from `streamrt_v1`. On other
//! targets there is no host: the calls go to the [`crate::testing`] host
//! installed on the calling thread (the SDK's own tests and yours), and a
//! call without one panics.
#![allow(clippy::missing_safety_doc)]

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "streamrt_v1")]
extern "C" {
    pub fn store_open(name_ptr: *const u8, name_len: i32) -> i32;
    pub fn store_get(
        store: i32,
        key_ptr: *const u8,
        key_len: i32,
        buf_ptr: *mut u8,
        buf_cap: i32,
    ) -> i32;
    pub fn store_put(
        store: i32,
        rec: i32,
        key_ptr: *const u8,
        key_len: i32,
        val_ptr: *const u8,
        val_len: i32,
    ) -> i32;
    pub fn store_delete(store: i32, rec: i32, key_ptr: *const u8, key_len: i32) -> i32;
    pub fn store_range(
        store: i32,
        start_ptr: *const u8,
        start_len: i32,
        end_ptr: *const u8,
        end_len: i32,
    ) -> i32;
    pub fn range_next(iter: i32, buf_ptr: *mut u8, buf_cap: i32) -> i32;
    pub fn range_close(iter: i32) -> i32;
    pub fn output_open(name_ptr: *const u8, name_len: i32) -> i32;
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        output: i32,
        rec: i32,
        key_ptr: *const u8,
        key_len: i32,
        val_ptr: *const u8,
        val_len: i32,
        hdr_ptr: *const u8,
        hdr_len: i32,
        ts: i64,
    ) -> i32;
    /// Emits the entries at `ptr..ptr+len` (ABI 1.2; see
    /// [`crate::abi::append_emit`]).
    pub fn emit_batch(ptr: *const u8, len: i32) -> i32;
    pub fn log(level: i32, msg_ptr: *const u8, msg_len: i32);
    pub fn record_error(rec: i32, msg_ptr: *const u8, msg_len: i32) -> i32;
    /// Answers the query being handled; only inside `streamrt_query`, once.
    pub fn respond(
        status: i32,
        ctype_ptr: *const u8,
        ctype_len: i32,
        body_ptr: *const u8,
        body_len: i32,
    ) -> i32;
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::*;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use crate::testing::with_host;

    const INVALID: i32 = -5;

    /// ptr/len as the host reads it: `None` for a length of -1, `Err` for
    /// other negative lengths (memory the guest does not have).
    unsafe fn read<'a>(ptr: *const u8, len: i32) -> Result<Option<&'a [u8]>, ()> {
        match len {
            -1 => Ok(None),
            0 => Ok(Some(&[])),
            n if n < 0 || ptr.is_null() => Err(()),
            n => Ok(Some(std::slice::from_raw_parts(ptr, n as usize))),
        }
    }

    unsafe fn write<'a>(ptr: *mut u8, cap: i32) -> Result<&'a mut [u8], ()> {
        match cap {
            0 => Ok(&mut []),
            n if n < 0 || ptr.is_null() => Err(()),
            n => Ok(std::slice::from_raw_parts_mut(ptr, n as usize)),
        }
    }

    pub unsafe fn store_open(name_ptr: *const u8, name_len: i32) -> i32 {
        match read(name_ptr, name_len) {
            Ok(Some(name)) => with_host(|h| h.store_open(name)),
            _ => INVALID,
        }
    }

    pub unsafe fn store_get(
        store: i32,
        key_ptr: *const u8,
        key_len: i32,
        buf_ptr: *mut u8,
        buf_cap: i32,
    ) -> i32 {
        match (read(key_ptr, key_len), write(buf_ptr, buf_cap)) {
            (Ok(key), Ok(buf)) => with_host(|h| h.store_get(store, key, buf)),
            _ => INVALID,
        }
    }

    pub unsafe fn store_put(
        store: i32,
        rec: i32,
        key_ptr: *const u8,
        key_len: i32,
        val_ptr: *const u8,
        val_len: i32,
    ) -> i32 {
        match (read(key_ptr, key_len), read(val_ptr, val_len)) {
            (Ok(key), Ok(val)) => with_host(|h| h.store_put(store, rec, key, val)),
            _ => INVALID,
        }
    }

    pub unsafe fn store_delete(store: i32, rec: i32, key_ptr: *const u8, key_len: i32) -> i32 {
        match read(key_ptr, key_len) {
            Ok(key) => with_host(|h| h.store_delete(store, rec, key)),
            _ => INVALID,
        }
    }

    pub unsafe fn store_range(
        store: i32,
        start_ptr: *const u8,
        start_len: i32,
        end_ptr: *const u8,
        end_len: i32,
    ) -> i32 {
        match (read(start_ptr, start_len), read(end_ptr, end_len)) {
            (Ok(start), Ok(end)) => with_host(|h| h.store_range(store, start, end)),
            _ => INVALID,
        }
    }

    pub unsafe fn range_next(iter: i32, buf_ptr: *mut u8, buf_cap: i32) -> i32 {
        match write(buf_ptr, buf_cap) {
            Ok(buf) => with_host(|h| h.range_next(iter, buf)),
            _ => INVALID,
        }
    }

    pub unsafe fn range_close(iter: i32) -> i32 {
        with_host(|h| h.range_close(iter))
    }

    pub unsafe fn output_open(name_ptr: *const u8, name_len: i32) -> i32 {
        match read(name_ptr, name_len) {
            Ok(Some(name)) => with_host(|h| h.output_open(name)),
            _ => INVALID,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub unsafe fn emit(
        output: i32,
        rec: i32,
        key_ptr: *const u8,
        key_len: i32,
        val_ptr: *const u8,
        val_len: i32,
        hdr_ptr: *const u8,
        hdr_len: i32,
        ts: i64,
    ) -> i32 {
        match (
            read(key_ptr, key_len),
            read(val_ptr, val_len),
            read(hdr_ptr, hdr_len),
        ) {
            (Ok(key), Ok(val), Ok(Some(hdr))) => {
                with_host(|h| h.emit(output, rec, key, val, hdr, ts))
            }
            _ => INVALID,
        }
    }

    pub unsafe fn emit_batch(ptr: *const u8, len: i32) -> i32 {
        match read(ptr, len) {
            Ok(Some(buf)) => with_host(|h| h.emit_batch(buf)),
            _ => INVALID,
        }
    }

    pub unsafe fn log(level: i32, msg_ptr: *const u8, msg_len: i32) {
        if let Ok(Some(msg)) = read(msg_ptr, msg_len) {
            with_host(|h| {
                h.log(level, msg);
                0
            });
        }
    }

    pub unsafe fn record_error(rec: i32, msg_ptr: *const u8, msg_len: i32) -> i32 {
        match read(msg_ptr, msg_len) {
            Ok(Some(msg)) => with_host(|h| h.record_error(rec, msg)),
            _ => INVALID,
        }
    }

    pub unsafe fn respond(
        status: i32,
        ctype_ptr: *const u8,
        ctype_len: i32,
        body_ptr: *const u8,
        body_len: i32,
    ) -> i32 {
        match (read(ctype_ptr, ctype_len), read(body_ptr, body_len)) {
            (Ok(Some(ctype)), Ok(Some(body))) => with_host(|h| h.respond(status, ctype, body)),
            _ => INVALID,
        }
    }
}

/// Passes `b` as (ptr, len).
#[inline]
pub(crate) fn arg(b: &[u8]) -> (*const u8, i32) {
    (b.as_ptr(), b.len() as i32)
}

/// Passes `b` as (ptr, len), with len -1 for `None`.
#[inline]
pub(crate) fn nullable(b: Option<&[u8]>) -> (*const u8, i32) {
    match b {
        Some(b) => (b.as_ptr(), b.len() as i32),
        None => (std::ptr::null(), crate::abi::NULL),
    }
}
