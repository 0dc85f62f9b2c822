//! The Rust SDK for streamrt stage modules: Rust compiled to
//! `wasm32-unknown-unknown` that the streamrt host calls once per batch of
//! input records, through host ABI v1 (`abi/ABI.md`).
//!
//! A stage is a `cdylib` crate with one handler, exported with
//! [`export_stage!`]:
//!
//! ```ignore
//! use streamrt::{Record, Result, Store};
//!
//! static COUNTS: Store = Store::new("click-counts");
//!
//! fn count(r: &Record) -> Result<()> {
//!     let page = r.key.ok_or("click without a page (null key)")?;
//!     let n = match COUNTS.get(page)? {
//!         Some(v) => std::str::from_utf8(&v).ok().and_then(|s| s.parse().ok()).ok_or("bad count")?,
//!         None => 0u64,
//!     };
//!     let next = (n + 1).to_string();
//!     COUNTS.put(page, next.as_bytes())?;
//!     streamrt::emit("counts", Some(page), Some(next.as_bytes()))
//! }
//!
//! streamrt::export_stage!(record: count);
//! ```
//!
//! built with
//!
//! ```text
//! PATH=/usr/bin:$PATH cargo build --release --target wasm32-unknown-unknown
//! ```
//!
//! # Registration
//!
//! `wasm32-unknown-unknown` has no initialiser that runs before the host's
//! first call (no `_initialize`, no `main`), so the handler is not
//! registered at run time: [`export_stage!`] defines the module's exports
//! (`streamrt_abi_version`, `streamrt_init`, `streamrt_buffer` and
//! `streamrt_process`, and `streamrt_query` with a query handler) around it,
//! and `streamrt_process` calls it directly.
//! Using the macro twice is a link error, and forgetting it leaves the module
//! without the exports the host requires, which the host refuses at load
//! naming them.
//!
//! # Query handlers
//!
//! A stage may also answer the HTTP routes that the app declares under
//! `query.routes` and names it for: give [`export_stage!`] a query handler,
//! a `fn(&Query) -> Result<Response, E>`, and the module exports
//! `streamrt_query` too.
//!
//! ```ignore
//! use streamrt::{Query, Response, Result, Store};
//!
//! static CHARTS: Store = Store::new("charts");
//!
//! // GET /charts/genre/{genre}, routed by the genre to its partition's owner.
//! fn serve(q: &Query) -> Result<Response> {
//!     let genre = q.param("genre").unwrap_or_default();
//!     Ok(match CHARTS.get(genre.as_bytes())? {
//!         Some(chart) => Response::json(chart),
//!         None => Response::error(404, format_args!("no chart for {}", genre)),
//!     })
//! }
//!
//! streamrt::export_stage!(record: count, query: serve);
//! ```
//!
//! Inside a query handler, stores and tables are read-only views at the
//! request's partition (global tables whole): `get` and `range` work, `put`
//! and `delete` fail with [`Code::ReadOnly`], and [`emit()`] fails with
//! [`Code::NotAllowed`]. An `Err` answers 500 with its text as a JSON error
//! (`{"error":"..."}`). A panic logs `"panic: "` and the message and
//! answers the same way before the instance traps; the host discards the
//! instance and, as it drops the answers of calls that trap, answers 500
//! with the trap. A request whose path or parameters are not UTF-8 is
//! answered 400 without calling the handler. A module without a query handler
//! exports no `streamrt_query`, and the host refuses it at load for a stage
//! that serves routes (the Go SDK, whose export is always there, answers
//! 501 instead).
//!
//! # Attribution
//!
//! Every effect ([`emit()`], [`Store::put`], [`Store::delete`]) carries the
//! index of the record it was made for, so that the host can drop a failed
//! record's effects and keep the rest of the batch. The SDK stamps it for
//! you: in a per-record handler, effects belong to the record being handled;
//! in a batch handler, to the record at hand inside a [`Batch::all`] loop,
//! and to the batch as a whole elsewhere.
//!
//! # Failures
//!
//! A per-record handler's `Err` fails that record: the SDK reports the
//! error's text, the host drops the record's effects and applies the stage's
//! error policy (fail, skip or dead-letter), and the batch goes on. A panic
//! aborts the instance (Rust on `wasm32-unknown-unknown` does not unwind),
//! but first the SDK's panic hook reports `"panic: "` and the message
//! against the record being handled, so the host applies the stage's policy
//! to that record with that message, and runs the rest of the batch again in
//! a fresh instance. A batch handler's `Err` or panic fails the batch; the
//! host then runs its records one per call to find the failing ones.
//!
//! # Memory
//!
//! Records borrow the batch the host wrote into guest memory, for the
//! duration of the handler call; the borrow checker enforces it.
//! Everything passed to the SDK is copied before the call returns: by the
//! host, or for [`emit()`] into the buffer in which the SDK collects a
//! batch's emits for the host's `emit_batch` (see [`flush`]). The SDK is not
//! thread-safe, and need not be: a Wasm instance runs one call at a time.
//!
//! # Testing natively
//!
//! Off `wasm32` there is no host; [`testing::FakeHost`] stands in for it, so
//! `cargo test` runs a stage's handler on the build machine, with the same
//! SDK code paths, including the host's undo of failed records and its error
//! policies.
//!
//! The crate builds with rustc 1.63 (Debian's) and has no dependencies.

pub mod abi;
mod emit;
mod error;
mod guest;
mod log;
mod query;
mod record;
mod store;
pub mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use crate::abi::{Code, Header, Headers};
pub use crate::emit::{emit, emit_with, flush, EmitOptions, Output};
pub use crate::error::{Error, Result};
pub use crate::log::{log, Level};
pub use crate::query::{Query, Response};
pub use crate::record::{stream_time, All, Batch, Record};
pub use crate::store::{Range, Store};

/// Defines the module's exports around a handler: a per-record handler, a
/// `fn(&Record) -> Result<(), E>`, or a batch handler, a
/// `fn(&Batch) -> Result<(), E>`, where `E` is any error type that
/// implements `Display` (this crate's [`Error`], `String`,
/// `Box<dyn std::error::Error>`...). An optional initialiser,
/// `fn() -> Result<(), E>`, runs once per instance; an `Err` refuses the
/// instance with its text in the host's log. An optional query handler,
/// `fn(&Query) -> Result<Response, E>`, answers the app's routes that name
/// the stage (see [Query handlers](crate#query-handlers)).
///
/// ```ignore
/// streamrt::export_stage!(record: handle);
/// streamrt::export_stage!(batch: handle_batch);
/// streamrt::export_stage!(record: handle, init: setup);
/// streamrt::export_stage!(record: handle, query: serve);
/// streamrt::export_stage!(batch: handle_batch, init: setup, query: serve);
/// ```
///
/// Use it once, in the root of a `cdylib` crate, with its arguments in this
/// order. Off `wasm32` it defines no exports (so that `cargo test` builds
/// the crate); test the handlers with [`testing::FakeHost`].
#[macro_export]
macro_rules! export_stage {
    (record: $handler:expr $(, init: $init:expr)? $(, query: $query:expr)? $(,)?) => {
        $crate::__export_stage!(process_records, $handler, [$($init)?], [$($query)?]);
    };
    (batch: $handler:expr $(, init: $init:expr)? $(, query: $query:expr)? $(,)?) => {
        $crate::__export_stage!(process_batch, $handler, [$($init)?], [$($query)?]);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_stage {
    ($process:ident, $handler:expr, [], [$($query:expr)?]) => {
        $crate::__export_stage!(
            $process,
            $handler,
            [$crate::__private::no_init],
            [$($query)?]
        );
    };
    ($process:ident, $handler:expr, [$init:expr], [$($query:expr)?]) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            #[no_mangle]
            pub extern "C" fn streamrt_abi_version() -> i32 {
                $crate::abi::VERSION
            }

            #[no_mangle]
            pub extern "C" fn streamrt_init() -> i32 {
                $crate::__private::init($init)
            }

            #[no_mangle]
            pub extern "C" fn streamrt_buffer(size: i32) -> i32 {
                $crate::__private::buffer(size)
            }

            #[no_mangle]
            pub extern "C" fn streamrt_process(ptr: i32, len: i32) -> i32 {
                $crate::__private::$process(ptr, len, $handler)
            }

            $(
                #[no_mangle]
                pub extern "C" fn streamrt_query(ptr: i32, len: i32) -> i32 {
                    $crate::__private::query(ptr, len, $query)
                }
            )?
        };

        /// Off wasm the stage has no exports; this keeps the handlers in use
        /// and makes a second `export_stage!` a compile error there too.
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __streamrt_export_stage() {
            let _ = (&$handler, &$init $(, &$query)?);
        }
    };
}

/// What [`export_stage!`] expands to calls; not part of the API.
#[doc(hidden)]
pub mod __private {
    use std::fmt;

    use crate::guest;
    use crate::{Batch, Query, Record, Response};

    pub fn no_init() -> Result<(), crate::Error> {
        Ok(())
    }

    pub fn init<F, E>(f: F) -> i32
    where
        F: FnOnce() -> Result<(), E>,
        E: fmt::Display,
    {
        guest::init(Some(f))
    }

    #[inline]
    pub fn buffer(size: i32) -> i32 {
        guest::buffer(size) as i32
    }

    #[inline]
    pub fn process_records<F, E>(ptr: i32, len: i32, mut handler: F) -> i32
    where
        F: FnMut(&Record<'_>) -> Result<(), E>,
        E: fmt::Display,
    {
        guest::process_records(ptr as u32 as usize, len as u32 as usize, &mut handler)
    }

    #[inline]
    pub fn process_batch<F, E>(ptr: i32, len: i32, mut handler: F) -> i32
    where
        F: FnMut(&Batch<'_>) -> Result<(), E>,
        E: fmt::Display,
    {
        guest::process_batch(ptr as u32 as usize, len as u32 as usize, &mut handler)
    }

    #[inline]
    pub fn query<F, E>(ptr: i32, len: i32, mut handler: F) -> i32
    where
        F: FnMut(&Query<'_>) -> Result<Response, E>,
        E: fmt::Display,
    {
        guest::query(ptr as u32 as usize, len as u32 as usize, &mut handler)
    }
}
