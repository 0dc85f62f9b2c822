//! The guest side of a batch call (the input buffer, decoding, calling the
//! handler, attributing effects to records and reporting failures) and of a
//! query call.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::abi::{self, BatchReader};
use crate::error::{Error, Result};
use crate::query::{self, Query, Response};
use crate::record::{Batch, Record};
use crate::sys;

/// The guest's state. A Wasm instance runs one call at a time and the host
/// gives each task its own instance, so this is plain thread-local state.
/// (Off wasm, each test thread has its own, which is what lets tests run in
/// parallel with a fake host each.)
pub(crate) struct Instance {
    /// The record index stamped on effects, or `abi::NO_RECORD`.
    pub(crate) current: Cell<i32>,
    pub(crate) stream_time: Cell<i64>,
    /// Counts `streamrt_process` calls; an iterator remembers the call that
    /// opened it, since the host closes iterators when a call ends.
    pub(crate) call: Cell<u32>,
    /// Whether a call is running: the host refuses writes outside one, and
    /// the panic hook only reports panics inside one.
    pub(crate) in_call: Cell<bool>,
    /// Set during a `streamrt_query` call: how the panic hook answers the
    /// query (500) rather than failing a record. `query` sets it, so that a
    /// module without a query handler links no `respond` and loads on hosts
    /// that predate it.
    answer_panic: Cell<Option<fn(&str)>>,
    hooked: Cell<bool>,
    /// The `streamrt_buffer`, grown with headroom and reused for every batch.
    input: RefCell<Vec<u8>>,
    /// `Store::get`'s buffer; its length is its capacity, all initialised.
    pub(crate) scratch: RefCell<Vec<u8>>,
    /// `emit`'s header list, for a record that goes to the host alone.
    pub(crate) headers: RefCell<Vec<u8>>,
    /// The emit buffer: entries for `emit_batch`, collected during a
    /// `streamrt_process` call up to `emit_limit` bytes (0 outside one, so
    /// that no entry fits and each goes to the host at once). `emit_mark` is
    /// where the record being handled starts in it, and `emit_err` the code
    /// of a flush the host refused, which fails the batch.
    pub(crate) emits: RefCell<Vec<u8>>,
    pub(crate) emit_limit: Cell<usize>,
    emit_mark: Cell<usize>,
    emit_err: Cell<i32>,
    /// Iterator buffers, recycled.
    pub(crate) range_bufs: RefCell<Vec<Vec<u8>>>,
    /// Outputs `emit` opened by name, and the last one it used.
    pub(crate) outputs: RefCell<Vec<crate::emit::Output>>,
    pub(crate) last_output: Cell<usize>,
    /// A batch handler's records, kept empty between calls to reuse the
    /// allocation.
    records: RefCell<Vec<Record<'static>>>,
}

impl Instance {
    const fn new() -> Instance {
        Instance {
            current: Cell::new(abi::NO_RECORD),
            stream_time: Cell::new(-1),
            call: Cell::new(0),
            in_call: Cell::new(false),
            answer_panic: Cell::new(None),
            hooked: Cell::new(false),
            input: RefCell::new(Vec::new()),
            scratch: RefCell::new(Vec::new()),
            headers: RefCell::new(Vec::new()),
            emits: RefCell::new(Vec::new()),
            emit_limit: Cell::new(0),
            emit_mark: Cell::new(0),
            emit_err: Cell::new(0),
            range_bufs: RefCell::new(Vec::new()),
            outputs: RefCell::new(Vec::new()),
            last_output: Cell::new(0),
            records: RefCell::new(Vec::new()),
        }
    }
}

thread_local! {
    pub(crate) static INST: Instance = const { Instance::new() };
}

/// The record index effects are attributed to right now.
pub(crate) fn current() -> i32 {
    INST.with(|i| i.current.get())
}

/// A host handle (store or output) cached per instance. On wasm there is
/// one instance per module instance; off wasm, each test host is a new
/// "instance" with its own handles, told apart by a generation number.
pub(crate) struct Handle(AtomicU64);

impl Handle {
    pub(crate) const fn new() -> Handle {
        Handle(AtomicU64::new(0))
    }

    /// The cached handle, or what `open` returns; results that will not
    /// change (a handle, or the `sticky` error code) are cached.
    #[inline]
    pub(crate) fn get(&self, sticky: i32, open: impl FnOnce() -> i32) -> i32 {
        let gen = generation();
        let v = self.0.load(Ordering::Relaxed);
        if (v >> 32) as u32 == gen {
            return v as u32 as i32;
        }
        let rc = open();
        if rc >= 0 || rc == sticky {
            self.0.store(
                (u64::from(gen) << 32) | u64::from(rc as u32),
                Ordering::Relaxed,
            );
        }
        rc
    }
}

#[cfg(target_arch = "wasm32")]
#[inline]
fn generation() -> u32 {
    1
}

#[cfg(not(target_arch = "wasm32"))]
fn generation() -> u32 {
    crate::testing::generation()
}

/// Largest batch `streamrt_buffer` accepts; a request over it gets 0.
const MAX_INPUT: usize = 1 << 30;

/// Backs `streamrt_buffer`: the address of a buffer of at least `size`
/// bytes, or 0.
pub(crate) fn buffer(size: i32) -> usize {
    if size < 0 || size as usize > MAX_INPUT {
        return 0;
    }
    INST.with(|inst| {
        let mut input = inst.input.borrow_mut();
        let size = size as usize;
        if size > input.len() || input.is_empty() {
            // Grow with headroom, so that slowly growing batches do not
            // reallocate every time.
            let n = size.max(2 * input.len()).clamp(64 << 10, MAX_INPUT);
            let mut fresh = Vec::new();
            if fresh.try_reserve_exact(n).is_err() {
                return 0;
            }
            fresh.resize(n, 0);
            *input = fresh;
        }
        input.as_mut_ptr() as usize
    })
}

/// Starts a `streamrt_process` or `streamrt_query` call.
fn begin(inst: &Instance) {
    if !inst.hooked.get() {
        install_panic_hook();
        inst.hooked.set(true);
    }
    inst.call.set(inst.call.get().wrapping_add(1));
    inst.current.set(abi::NO_RECORD);
    inst.in_call.set(true);
    inst.answer_panic.set(None);
    // A call that trapped (off wasm: panicked) left its buffer behind.
    inst.emits.borrow_mut().clear();
    inst.emit_limit.set(0);
}

fn end(inst: &Instance) {
    inst.current.set(abi::NO_RECORD);
    inst.in_call.set(false);
    inst.answer_panic.set(None);
}

/// The input at ptr..ptr+len, which must lie in the buffer handed out by
/// `streamrt_buffer`: it is the only guest memory the host may write.
fn input_in(input: &[u8], ptr: usize, len: usize) -> Option<&[u8]> {
    let base = input.as_ptr() as usize;
    let off = ptr.checked_sub(base)?;
    if input.is_empty() || off > input.len() || len > input.len() - off {
        return None;
    }
    Some(&input[off..off + len])
}

const OUTSIDE_BUFFER: &str = "streamrt: streamrt_process: batch lies outside the streamrt_buffer";

/// Backs `streamrt_process` for a per-record handler.
pub(crate) fn process_records<F, E>(ptr: usize, len: usize, handler: &mut F) -> i32
where
    F: FnMut(&Record<'_>) -> Result<(), E>,
    E: fmt::Display,
{
    with_batch(ptr, len, |inst, buf| run_records(inst, buf, handler))
}

/// Runs `run` on the batch the host wrote at `ptr..ptr+len`, between the
/// instance's `begin` and `end`, with the emit buffer on; a batch outside
/// the input buffer fails.
fn with_batch(ptr: usize, len: usize, run: impl FnOnce(&Instance, &[u8]) -> i32) -> i32 {
    INST.with(|inst| {
        begin(inst);
        begin_emits(inst);
        let input = inst.input.borrow();
        let rc = match input_in(&input, ptr, len) {
            None => fail_batch(OUTSIDE_BUFFER),
            Some(buf) => run(inst, buf),
        };
        let rc = end_emits(inst, rc);
        end(inst);
        rc
    })
}

/// The size of the emit buffer. It is one Wasm page: enough for hundreds of
/// typical records, which share the one crossing into the host (about 75
/// ns) until its cost per record is lost in the noise, so a larger buffer
/// would save nothing; and small enough to stay in the processor's cache
/// and to cost an instance little memory. An entry larger than the buffer
/// goes to the host on its own, through `emit`.
pub(crate) const EMIT_BUFFER_SIZE: usize = 64 << 10;

/// Turns the emit buffer on for a `streamrt_process` call.
fn begin_emits(inst: &Instance) {
    let mut b = inst.emits.borrow_mut();
    if b.capacity() < EMIT_BUFFER_SIZE {
        b.reserve_exact(EMIT_BUFFER_SIZE);
    }
    inst.emit_limit.set(EMIT_BUFFER_SIZE);
    inst.emit_mark.set(0);
    inst.emit_err.set(0);
}

/// Ends a `streamrt_process` call that returns `rc`: a completed batch
/// hands over what the buffer holds, a failed one drops it (the host undoes
/// the batch anyway). It turns the buffer off and returns the call's
/// result: a flush the host refused fails the batch.
fn end_emits(inst: &Instance, mut rc: i32) -> i32 {
    if rc == 0 {
        let _ = flush_emits(inst);
        let code = inst.emit_err.get();
        if code < 0 {
            rc = fail_batch(Error::host(abi::FUNC_EMIT_BATCH, "", code));
        }
    }
    inst.emits.borrow_mut().clear();
    inst.emit_limit.set(0);
    rc
}

/// Hands the buffered entries to the host in one `emit_batch` call. The
/// host refuses a buffer only for what the SDK checks itself (a handle it
/// opened, a record index it stamped), so a refusal is a bug; it is kept
/// to fail the batch.
pub(crate) fn flush_emits(inst: &Instance) -> Result<()> {
    let mut b = inst.emits.borrow_mut();
    if b.is_empty() {
        return Ok(());
    }
    inst.emit_mark.set(0);
    let rc = unsafe { sys::emit_batch(b.as_ptr(), b.len() as i32) };
    b.clear();
    if rc < 0 {
        if inst.emit_err.get() == 0 {
            inst.emit_err.set(rc);
        }
        return Err(Error::host(abi::FUNC_EMIT_BATCH, "", rc));
    }
    Ok(())
}

/// Takes record `rec`'s entries off the tail of the emit buffer, looking
/// from offset `from` on, so that a failed record's buffered emits never
/// reach the host (`record_error` undoes those already handed over).
/// Entries of `rec` followed by another record's, from a batch handler that
/// went back to an earlier record, cannot be taken off alone: then it hands
/// the buffer over as it is, so that the host sees the emits in the order
/// they were made and treats the failure as it would have without the
/// buffer.
fn drop_emits(inst: &Instance, rec: i32, from: usize) {
    let stranded = {
        let mut b = inst.emits.borrow_mut();
        let (mut tail, mut stranded) = (None, false);
        let mut p = from;
        while p < b.len() {
            let e = &b[p..];
            if i32::from_le_bytes([e[4], e[5], e[6], e[7]]) != rec {
                stranded = stranded || tail.is_some();
                tail = None;
            } else if tail.is_none() {
                tail = Some(p);
            }
            p += entry_len(e);
        }
        if let (Some(t), false) = (tail, stranded) {
            b.truncate(t);
        }
        stranded
    };
    if stranded {
        let _ = flush_emits(inst);
    }
}

/// The size of the buffered entry at the start of `e`.
fn entry_len(e: &[u8]) -> usize {
    let word = |i: usize| u32::from_le_bytes([e[i], e[i + 1], e[i + 2], e[i + 3]]);
    let mut n = abi::EMIT_FIXED_SIZE + word(24) as usize;
    for l in [word(16), word(20)] {
        if l != 0xFFFF_FFFF {
            n += l as usize;
        }
    }
    n
}

/// Reports that record `rec` failed with `msg`, after dropping its
/// buffered emits; `from` is where to look for them in the buffer.
fn fail_record(inst: &Instance, rec: i32, from: usize, msg: &str) {
    drop_emits(inst, rec, from);
    record_error(rec, msg);
}

/// [`fail_record`] for a batch handler's `Batch::fail`.
pub(crate) fn fail_batch_record(rec: i32, msg: &str) {
    INST.with(|inst| fail_record(inst, rec, 0, msg));
}

fn run_records<F, E>(inst: &Instance, buf: &[u8], handler: &mut F) -> i32
where
    F: FnMut(&Record<'_>) -> Result<(), E>,
    E: fmt::Display,
{
    let mut reader = match BatchReader::new(buf) {
        Ok(r) => r,
        Err(e) => return fail_batch(e),
    };
    inst.stream_time.set(reader.stream_time());
    let mut i = 0usize;
    while let Some(raw) = reader.next_record() {
        let raw = match raw {
            Ok(r) => r,
            Err(e) => return fail_batch(e),
        };
        let rec = Record::from_raw(raw, i);
        inst.current.set(i as i32);
        inst.emit_mark.set(inst.emits.borrow().len());
        if let Err(e) = handler(&rec) {
            fail_record(inst, i as i32, inst.emit_mark.get(), &e.to_string());
        }
        inst.current.set(abi::NO_RECORD);
        i += 1;
    }
    0
}

const QUERY_OUTSIDE_BUFFER: &str =
    "streamrt: streamrt_query: request lies outside the streamrt_buffer";

/// Backs `streamrt_query`: answers the request through `respond` and
/// returns 0, whatever the handler did (short of a panic, which traps).
pub(crate) fn query<F, E>(ptr: usize, len: usize, handler: &mut F) -> i32
where
    F: FnMut(&Query<'_>) -> Result<Response, E>,
    E: fmt::Display,
{
    INST.with(|inst| {
        begin(inst);
        inst.answer_panic.set(Some(answer_panic));
        let input = inst.input.borrow();
        match input_in(&input, ptr, len) {
            None => query::respond_error(500, QUERY_OUTSIDE_BUFFER),
            Some(buf) => query::run(buf, handler),
        }
        end(inst);
        0
    })
}

fn answer_panic(text: &str) {
    query::respond_error(500, text);
}

/// Backs `streamrt_process` for a batch handler.
pub(crate) fn process_batch<F, E>(ptr: usize, len: usize, handler: &mut F) -> i32
where
    F: FnMut(&Batch<'_>) -> Result<(), E>,
    E: fmt::Display,
{
    with_batch(ptr, len, |inst, buf| run_batch(inst, buf, handler))
}

fn run_batch<F, E>(inst: &Instance, buf: &[u8], handler: &mut F) -> i32
where
    F: FnMut(&Batch<'_>) -> Result<(), E>,
    E: fmt::Display,
{
    let mut reader = match BatchReader::new(buf) {
        Ok(r) => r,
        Err(e) => return fail_batch(e),
    };
    inst.stream_time.set(reader.stream_time());
    // A record takes at least its fixed part and three length words, which
    // bounds the count before allocating for it.
    let n = reader.len();
    if n > buf.len() / (abi::RECORD_FIXED_SIZE + 12) {
        return fail_batch(format!(
            "streamrt: batch header claims {} records, more than its size allows",
            n
        ));
    }
    let mut records = reuse(inst.records.take());
    records.reserve(n);
    let mut i = 0;
    while let Some(raw) = reader.next_record() {
        match raw {
            Ok(r) => records.push(Record::from_raw(r, i)),
            Err(e) => {
                *inst.records.borrow_mut() = reuse(records);
                return fail_batch(e);
            }
        }
        i += 1;
    }
    let batch = Batch::new(records, reader.stream_time());
    let rc = match handler(&batch) {
        Ok(()) => 0,
        Err(e) => fail_batch(e),
    };
    *inst.records.borrow_mut() = reuse(batch.into_records());
    rc
}

/// Empties v and gives it another lifetime, so that the allocation of one
/// batch's records serves the next batch.
fn reuse<'a, 'b>(mut v: Vec<Record<'a>>) -> Vec<Record<'b>> {
    v.clear();
    // SAFETY: v is empty, and Record<'a> and Record<'b> differ only in a
    // lifetime, so they have the same layout; no value of either lifetime
    // remains to outlive its borrow.
    unsafe { std::mem::transmute::<Vec<Record<'a>>, Vec<Record<'b>>>(v) }
}

/// Reports that record `rec` failed with `msg`.
pub(crate) fn record_error(rec: i32, msg: &str) {
    let (p, n) = sys::arg(msg.as_bytes());
    unsafe {
        sys::record_error(rec, p, n);
    }
}

/// Reports `err` as the reason the batch failed and returns the non-zero
/// result of `streamrt_process`.
fn fail_batch(err: impl fmt::Display) -> i32 {
    record_error(abi::NO_RECORD, &err.to_string());
    1
}

/// Backs `streamrt_init`: installs the panic hook, then runs the stage's
/// initialiser, if any. A failing initialiser refuses the instance.
pub(crate) fn init<F, E>(user: Option<F>) -> i32
where
    F: FnOnce() -> Result<(), E>,
    E: fmt::Display,
{
    INST.with(|inst| {
        if !inst.hooked.get() {
            install_panic_hook();
            inst.hooked.set(true);
        }
    });
    match user.map(|f| f()) {
        Some(Err(e)) => {
            crate::log::log(
                crate::log::Level::Error,
                &format!("streamrt: stage init failed: {}", e),
            );
            1
        }
        _ => 0,
    }
}

/// The text of a panic's payload, as std's own hook prints it.
fn payload_text(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// Reports a panic to the host before the guest traps (on wasm a panic
/// aborts: there is no unwinding to recover from): the record being handled
/// fails with "panic: " and the message (the batch, outside a record), and
/// the location goes to the host's log. The host then applies the stage's
/// error policy to that record with this message. In a query handler, the
/// panic answers 500 with the message as a JSON error instead.
// PanicInfo is what 1.63 calls the hook's argument.
#[allow(deprecated)]
pub(crate) fn report_panic(info: &std::panic::PanicInfo<'_>) {
    let msg = payload_text(info.payload());
    let (rec, answer) = INST
        .try_with(|i| (i.current.get(), i.answer_panic.get()))
        .unwrap_or((abi::NO_RECORD, None));
    let text = format!("panic: {}", msg);
    let whose = if answer.is_some() {
        "query handler".to_string()
    } else if rec == abi::NO_RECORD {
        "batch handler".to_string()
    } else {
        format!("record {}", rec)
    };
    let at = match info.location() {
        Some(l) => format!(" (at {}:{}:{})", l.file(), l.line(), l.column()),
        None => String::new(),
    };
    crate::log::log(
        crate::log::Level::Error,
        &format!("streamrt: {}: {}{}", whose, text, at),
    );
    match answer {
        Some(answer) => answer(&text),
        None => record_error(rec, &text),
    }
}

#[cfg(target_arch = "wasm32")]
fn install_panic_hook() {
    std::panic::set_hook(Box::new(report_panic));
}

#[cfg(not(target_arch = "wasm32"))]
fn install_panic_hook() {
    crate::testing::install_panic_hook();
}
