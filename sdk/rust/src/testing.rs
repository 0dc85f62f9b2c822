//! A stand-in for the streamrt host, so that `cargo test` runs stage
//! handlers on the build machine (this module exists off `wasm32` only).
//!
//! [`FakeHost`] models what the real host does around a guest: stores (in
//! memory), outputs mapped to topics, one `streamrt_process` call per batch,
//! the undo of a failed record's effects, the replay of a failed batch one
//! record per call, and the stage's error policy, with the same error texts.
//! A panic in a handler plays the part of a trap: the SDK's panic hook
//! reports it, as it does in a Wasm guest, and the fake host treats the call
//! as trapped.
//!
//! ```ignore
//! use streamrt::abi::OwnedRecord;
//! use streamrt::testing::{FakeHost, Policy};
//!
//! let host = FakeHost::new().store("click-counts").output("counts", "page-counts").policy(Policy::Skip);
//! host.run_records(&[OwnedRecord { topic: "clicks".into(), key: Some(b"home".to_vec()), ..Default::default() }], count)
//!     .unwrap();
//! assert_eq!(host.get("click-counts", b"home"), Some(b"1".to_vec()));
//! ```
//!
//! [`FakeHost::query`] calls a query handler as the host does, with the
//! stores read-only and outputs refused, and returns its answer.
//!
//! [`Host`] is the interface the SDK's raw calls ([`crate::sys`]) reach off
//! `wasm32`; implement it to fake a host differently.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use crate::abi::{self, Code, Headers, OwnedHeader, OwnedRecord, QueryRequest};
use crate::guest;
use crate::query::{Query, Response};
use crate::record::{Batch, Record};

/// The host functions of ABI v1 as a fake host serves them. Slices stand
/// for guest memory: `None` for a length of -1 (null), and `buf` is the
/// guest buffer the host may write (its whole length is the capacity the
/// guest passed). Results are as `abi/ABI.md` says.
#[allow(missing_docs)]
pub trait Host {
    fn store_open(&mut self, name: &[u8]) -> i32;
    fn store_get(&mut self, store: i32, key: Option<&[u8]>, buf: &mut [u8]) -> i32;
    fn store_put(&mut self, store: i32, rec: i32, key: Option<&[u8]>, value: Option<&[u8]>) -> i32;
    fn store_delete(&mut self, store: i32, rec: i32, key: Option<&[u8]>) -> i32;
    fn store_range(&mut self, store: i32, start: Option<&[u8]>, end: Option<&[u8]>) -> i32;
    fn range_next(&mut self, iter: i32, buf: &mut [u8]) -> i32;
    fn range_close(&mut self, iter: i32) -> i32;
    fn output_open(&mut self, name: &[u8]) -> i32;
    fn emit(
        &mut self,
        output: i32,
        rec: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[u8],
        ts: i64,
    ) -> i32;
    /// Emits the entries of an `emit_batch` buffer. This default is the
    /// real host's: a malformed buffer is `ERR_INVALID` with nothing
    /// emitted; otherwise each entry goes to [`Host::emit`] in order,
    /// stopping at the first it refuses, whose code is the result.
    fn emit_batch(&mut self, buf: &[u8]) -> i32 {
        emit_entries(self, buf)
    }
    fn log(&mut self, level: i32, msg: &[u8]);
    fn record_error(&mut self, rec: i32, msg: &[u8]) -> i32;
    /// A query handler's answer. Outside a query call the host refuses it,
    /// which is what this default does.
    fn respond(&mut self, status: i32, content_type: &[u8], body: &[u8]) -> i32 {
        let _ = (status, content_type, body);
        Code::NotAllowed.raw()
    }
}

/// The host's `emit_batch` over [`Host::emit`]: checks the whole buffer,
/// then emits entry by entry until one is refused.
pub fn emit_entries<H: Host + ?Sized>(host: &mut H, buf: &[u8]) -> i32 {
    let entries = match abi::decode_emits(buf) {
        Ok(es) => es,
        Err(_) => return Code::Invalid.raw(),
    };
    for e in entries {
        let rc = host.emit(e.output, e.rec, e.key, e.value, e.headers, e.timestamp);
        if rc < 0 {
            return rc;
        }
    }
    OK
}

thread_local! {
    static HOST: RefCell<Option<Rc<RefCell<dyn Host>>>> = RefCell::new(None);
    static GENERATION: Cell<u32> = const { Cell::new(0) };
    static IN_GUEST: Cell<bool> = const { Cell::new(false) };
}

static NEXT_GENERATION: AtomicU32 = AtomicU32::new(1);

/// The handle generation of the thread's current host.
pub(crate) fn generation() -> u32 {
    GENERATION.with(|g| g.get())
}

/// Runs a raw call against the thread's host.
pub(crate) fn with_host(f: impl FnOnce(&mut dyn Host) -> i32) -> i32 {
    let host = HOST.with(|h| h.borrow().clone());
    match host {
        None => panic!(
            "streamrt: no host: off wasm32, run handlers through streamrt::testing::FakeHost"
        ),
        Some(h) => match h.try_borrow_mut() {
            Ok(mut h) => f(&mut *h),
            Err(_) => Code::Internal.raw(),
        },
    }
}

/// Installs, once per process, a panic hook that reports a handler's panic
/// to the fake host as the SDK does in a guest, and leaves every other panic
/// to the hook that was there before.
pub(crate) fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_GUEST.with(|g| g.get()) {
                guest::report_panic(info);
            } else {
                prev(info);
            }
        }));
    });
}

/// What one `streamrt_process` call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// It returned this code (0: the batch completed).
    Returned(i32),
    /// The handler panicked: in a Wasm guest, a trap. The text is the
    /// panic's message.
    Trapped(String),
}

/// Makes one `streamrt_process` call with a per-record handler against
/// `host`, as a Wasm host would: the SDK's `streamrt_buffer`, a copy of
/// `batch` into it, `streamrt_process`. `generation` names the guest
/// instance whose handles the SDK may reuse (a new number is a new
/// instance).
pub fn call_records<H, F, E>(
    host: &Rc<RefCell<H>>,
    generation: u32,
    batch: &[u8],
    handler: &mut F,
) -> Call
where
    H: Host + 'static,
    F: FnMut(&Record<'_>) -> Result<(), E>,
    E: fmt::Display,
{
    let h: Rc<RefCell<dyn Host>> = host.clone();
    call(h, generation, batch, &mut |ptr, len| {
        guest::process_records(ptr, len, handler)
    })
}

/// [`call_records`] for a batch handler.
pub fn call_batch<H, F, E>(
    host: &Rc<RefCell<H>>,
    generation: u32,
    batch: &[u8],
    handler: &mut F,
) -> Call
where
    H: Host + 'static,
    F: FnMut(&Batch<'_>) -> Result<(), E>,
    E: fmt::Display,
{
    let h: Rc<RefCell<dyn Host>> = host.clone();
    call(h, generation, batch, &mut |ptr, len| {
        guest::process_batch(ptr, len, handler)
    })
}

/// Makes one `streamrt_query` call with a query handler against `host`,
/// with `request` (an encoded [`QueryRequest`]) written into the SDK's
/// `streamrt_buffer`. The handler's answer goes to `host`'s
/// [`Host::respond`].
pub fn call_query<H, F, E>(
    host: &Rc<RefCell<H>>,
    generation: u32,
    request: &[u8],
    handler: &mut F,
) -> Call
where
    H: Host + 'static,
    F: FnMut(&Query<'_>) -> Result<Response, E>,
    E: fmt::Display,
{
    let h: Rc<RefCell<dyn Host>> = host.clone();
    call(h, generation, request, &mut |ptr, len| {
        guest::query(ptr, len, handler)
    })
}

/// A new instance generation for [`call_records`] and [`call_batch`].
pub fn new_generation() -> u32 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

fn call(
    host: Rc<RefCell<dyn Host>>,
    gen: u32,
    batch: &[u8],
    process: &mut dyn FnMut(usize, usize) -> i32,
) -> Call {
    install_panic_hook();
    let prev_host = HOST.with(|h| h.borrow_mut().replace(host));
    let prev_gen = GENERATION.with(|g| g.replace(gen));
    let ptr = guest::buffer(batch.len() as i32);
    let result = if ptr == 0 {
        Call::Returned(1)
    } else {
        // SAFETY: buffer returned the address of a guest buffer of at least
        // batch.len() bytes, and nothing borrows it between calls.
        unsafe { std::ptr::copy_nonoverlapping(batch.as_ptr(), ptr as *mut u8, batch.len()) };
        IN_GUEST.with(|g| g.set(true));
        let r = panic::catch_unwind(AssertUnwindSafe(|| process(ptr, batch.len())));
        IN_GUEST.with(|g| g.set(false));
        match r {
            Ok(rc) => Call::Returned(rc),
            Err(p) => Call::Trapped(panic_text(&*p)),
        }
    };
    HOST.with(|h| *h.borrow_mut() = prev_host);
    GENERATION.with(|g| g.set(prev_gen));
    result
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}

/// What the stage does with a record its handler fails on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// Stop the task: the run returns [`Stopped`] and drops its effects.
    Fail,
    /// Log and count the record, and go on.
    Skip,
    /// Produce the record to this topic with the error in headers, and go on.
    DeadLetter(String),
}

/// A record the guest produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitted {
    /// The output's topic (the dead-letter topic for failed records).
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<OwnedHeader>,
    pub timestamp: i64,
}

impl Emitted {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.key == key.as_bytes())
            .and_then(|h| h.value.as_deref())
    }
}

/// A record the stage's error policy handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// "record" (the handler's error), "trap" (a panic), or "batch".
    pub kind: String,
    pub message: String,
}

/// A task stopped by [`Policy::Fail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stopped {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason: String,
}

impl fmt::Display for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stage stopped at {}/{} offset {}: {}",
            self.topic, self.partition, self.offset, self.reason
        )
    }
}

impl std::error::Error for Stopped {}

/// An in-memory model of the streamrt host running one stage task. See the
/// module documentation.
pub struct FakeHost {
    model: Rc<RefCell<Model>>,
    /// The guest instance generation; a trap makes a new one, as the host
    /// replaces a trapped instance.
    gen: Cell<u32>,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost::new()
    }
}

impl FakeHost {
    /// A host with no stores and no outputs, the dead-letter policy to topic
    /// "dlq", and stage name "stage".
    pub fn new() -> FakeHost {
        FakeHost {
            model: Rc::new(RefCell::new(Model::default())),
            gen: Cell::new(new_generation()),
        }
    }

    /// Declares a store.
    pub fn store(self, name: &str) -> FakeHost {
        self.model
            .borrow_mut()
            .stores
            .push((name.to_string(), BTreeMap::new()));
        self
    }

    /// Declares a table: a store the host materialises from a topic, which
    /// the stage may only read (writes fail with ERR_READ_ONLY). Fill it with
    /// [`FakeHost::set`].
    pub fn table(self, name: &str) -> FakeHost {
        {
            let mut m = self.model.borrow_mut();
            m.stores.push((name.to_string(), BTreeMap::new()));
            let i = m.stores.len() - 1;
            m.read_only.push(i);
        }
        self
    }

    /// Declares an output and the topic it produces to.
    pub fn output(self, name: &str, topic: &str) -> FakeHost {
        {
            let mut m = self.model.borrow_mut();
            m.outputs.push((name.to_string(), topic.to_string()));
            // The host numbers outputs in name order.
            m.outputs.sort();
        }
        self
    }

    /// Sets the error policy.
    pub fn policy(self, p: Policy) -> FakeHost {
        self.model.borrow_mut().policy = p;
        self
    }

    /// Sets the stage's name, which dead-letter headers carry.
    pub fn stage(self, name: &str) -> FakeHost {
        self.model.borrow_mut().stage = name.to_string();
        self
    }

    /// Stores `value` under `key`, as earlier batches would have.
    ///
    /// # Panics
    ///
    /// When the store is not declared.
    pub fn set(&self, store: &str, key: &[u8], value: &[u8]) {
        let mut m = self.model.borrow_mut();
        let i = m.store_index(store);
        m.stores[i].1.insert(key.to_vec(), value.to_vec());
    }

    /// The value under `key` in `store`.
    pub fn get(&self, store: &str, key: &[u8]) -> Option<Vec<u8>> {
        let m = self.model.borrow();
        let i = m.store_index(store);
        m.stores[i].1.get(key).cloned()
    }

    /// Every entry of `store`, in key order.
    pub fn entries(&self, store: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let m = self.model.borrow();
        let i = m.store_index(store);
        m.stores[i]
            .1
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The records emitted so far, dead-letter records included.
    pub fn emitted(&self) -> Vec<Emitted> {
        self.model.borrow().emitted.clone()
    }

    /// Returns and forgets the records emitted so far.
    pub fn take_emitted(&self) -> Vec<Emitted> {
        std::mem::take(&mut self.model.borrow_mut().emitted)
    }

    /// The records the error policy handled so far.
    pub fn failures(&self) -> Vec<Failure> {
        self.model.borrow().failures.clone()
    }

    /// Every `record_error` call so far, as (record index, message).
    pub fn record_errors(&self) -> Vec<(i32, String)> {
        self.model.borrow().record_errors.clone()
    }

    /// The guest's log so far, as (level, message).
    pub fn logs(&self) -> Vec<(i32, String)> {
        self.model.borrow().logs.clone()
    }

    /// The size of every `emit_batch` buffer the guest handed over so far,
    /// in order: the SDK's emit buffer at work.
    pub fn emit_batches(&self) -> Vec<usize> {
        self.model.borrow().emit_batches.clone()
    }

    /// How many `store_get` and `range_next` calls said the guest's buffer
    /// was too small: the SDK's buffer growth at work.
    pub fn too_small(&self) -> (usize, usize) {
        let m = self.model.borrow();
        (m.get_too_small, m.next_too_small)
    }

    /// The stream time so far.
    pub fn stream_time(&self) -> i64 {
        self.model.borrow().stream_time
    }

    /// Runs `records` through a per-record handler in one batch, as a task
    /// does: the stream time advances to the highest timestamp, failed
    /// records get the error policy, and a batch that fails as a whole (a
    /// non-zero result, a panic) is undone and run again one record per
    /// call. Effects of a run that completes are kept (committed);
    /// [`Policy::Fail`] drops the run's effects and returns [`Stopped`], and
    /// the host runs nothing more.
    pub fn run_records<F, E>(&self, records: &[OwnedRecord], mut handler: F) -> Result<(), Stopped>
    where
        F: FnMut(&Record<'_>) -> Result<(), E>,
        E: fmt::Display,
    {
        self.run(records, &mut |host, gen, enc| {
            call_records(host, gen, enc, &mut handler)
        })
    }

    /// [`FakeHost::run_records`] for a batch handler.
    pub fn run_batch<F, E>(&self, records: &[OwnedRecord], mut handler: F) -> Result<(), Stopped>
    where
        F: FnMut(&Batch<'_>) -> Result<(), E>,
        E: fmt::Display,
    {
        self.run(records, &mut |host, gen, enc| {
            call_batch(host, gen, enc, &mut handler)
        })
    }

    /// Makes one `streamrt_process` call on an encoded batch with a
    /// per-record handler, with none of a task's logic around it: the
    /// effects stay, record errors are only recorded, and the result is
    /// what the call did.
    pub fn call_records<F, E>(&self, encoded: &[u8], mut handler: F) -> Call
    where
        F: FnMut(&Record<'_>) -> Result<(), E>,
        E: fmt::Display,
    {
        self.raw_call(encoded, &mut |host, gen, enc| {
            call_records(host, gen, enc, &mut handler)
        })
    }

    /// [`FakeHost::call_records`] for a batch handler.
    pub fn call_batch<F, E>(&self, encoded: &[u8], mut handler: F) -> Call
    where
        F: FnMut(&Batch<'_>) -> Result<(), E>,
        E: fmt::Display,
    {
        self.raw_call(encoded, &mut |host, gen, enc| {
            call_batch(host, gen, enc, &mut handler)
        })
    }

    /// Calls a query handler on `request` as the host does: stores and
    /// tables are readable and read-only (`put` and `delete` fail with
    /// [`Code::ReadOnly`]), outputs and `record_error` are refused
    /// ([`Code::NotAllowed`]). It returns what the call did and the answer
    /// the guest gave, if any. A panic answers 500 before it traps; the
    /// real host then answers 500 with its own text and discards the
    /// instance.
    ///
    /// The fake host's stores are not partitioned: every partition sees
    /// all of them.
    pub fn query<F, E>(
        &self,
        request: &QueryRequest<'_>,
        mut handler: F,
    ) -> (Call, Option<Response>)
    where
        F: FnMut(&Query<'_>) -> Result<Response, E>,
        E: fmt::Display,
    {
        let mut enc = Vec::new();
        abi::append_query_request(&mut enc, request);
        {
            let mut m = self.model.borrow_mut();
            m.begin(0, &[]);
            m.querying = true;
            m.response = None;
        }
        let c = call_query(&self.model, self.gen.get(), &enc, &mut handler);
        let response = {
            let mut m = self.model.borrow_mut();
            m.end();
            m.querying = false;
            m.response.take()
        };
        if let Call::Trapped(_) = c {
            self.gen.set(new_generation());
        }
        (c, response)
    }

    fn raw_call(&self, encoded: &[u8], call: &mut Caller<'_>) -> Call {
        // The host knows the records it encoded: their count bounds record
        // indexes, and their timestamps are what emits inherit.
        let recs: Vec<OwnedRecord> = match abi::BatchReader::new(encoded) {
            Ok(r) => r.filter_map(|r| r.ok()).map(OwnedRecord::from).collect(),
            Err(_) => Vec::new(),
        };
        self.model.borrow_mut().begin(recs.len(), &recs);
        let c = call(&self.model, self.gen.get(), encoded);
        self.model.borrow_mut().end();
        if let Call::Trapped(_) = c {
            self.gen.set(new_generation());
        }
        c
    }

    fn run(&self, records: &[OwnedRecord], call: &mut Caller<'_>) -> Result<(), Stopped> {
        {
            let mut m = self.model.borrow_mut();
            if let Some(s) = &m.stopped {
                return Err(s.clone());
            }
            for r in records {
                m.stream_time = m.stream_time.max(r.timestamp);
            }
        }
        let (mark, emit_mark) = self.model.borrow().marks();
        let r = self.run_batch_of(records, call);
        let mut m = self.model.borrow_mut();
        match r {
            Ok(()) => m.journal.clear(),
            Err(ref s) => {
                m.rollback(mark);
                m.emitted.truncate(emit_mark);
                m.journal.clear();
                m.stopped = Some(s.clone());
            }
        }
        r
    }

    /// The task's logic around one guest call (the engine's runBatch).
    fn run_batch_of(&self, recs: &[OwnedRecord], call: &mut Caller<'_>) -> Result<(), Stopped> {
        if recs.is_empty() {
            return Ok(());
        }
        let (mark, emit_mark) = self.model.borrow().marks();
        let enc = {
            let m = self.model.borrow();
            let mut topics: Vec<String> = Vec::new();
            for r in recs {
                if !topics.contains(&r.topic) {
                    topics.push(r.topic.clone());
                }
            }
            abi::encode_batch(&abi::Batch {
                stream_time: m.stream_time,
                topics,
                records: recs.to_vec(),
            })
        };
        self.model.borrow_mut().begin(recs.len(), recs);
        let outcome = call(&self.model, self.gen.get(), &enc);
        let interleaved = {
            let mut m = self.model.borrow_mut();
            m.end();
            m.interleaved
        };
        if outcome == Call::Returned(0) && !interleaved {
            let failed = self.model.borrow().failed.clone();
            for (i, msg) in failed {
                self.record_failed(&recs[i as usize], "record", msg)?;
            }
            return Ok(());
        }
        {
            let mut m = self.model.borrow_mut();
            m.rollback(mark);
            m.emitted.truncate(emit_mark);
        }
        let mut kind = "batch";
        let err = match &outcome {
            Call::Returned(0) => None,
            Call::Returned(rc) => Some(format!(
                "streamrt: guest failed the batch: streamrt_process returned {}",
                rc
            )),
            Call::Trapped(_) => {
                kind = "trap";
                // The host replaces a trapped instance.
                self.gen.set(new_generation());
                Some("streamrt: guest trapped: unreachable (a panic)".to_string())
            }
        };
        if recs.len() > 1 {
            for i in 0..recs.len() {
                self.run_batch_of(&recs[i..i + 1], call)?;
            }
            return Ok(());
        }
        let mut msg = {
            let m = self.model.borrow();
            m.failed
                .get(&0)
                .cloned()
                .unwrap_or_else(|| m.batch_msg.clone())
        };
        if let Some(e) = err {
            msg = if msg.is_empty() {
                e
            } else {
                format!("{} ({})", msg, e)
            };
        }
        self.record_failed(&recs[0], kind, msg)
    }

    fn record_failed(&self, r: &OwnedRecord, kind: &str, msg: String) -> Result<(), Stopped> {
        let mut m = self.model.borrow_mut();
        m.failures.push(Failure {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
            kind: kind.to_string(),
            message: msg.clone(),
        });
        match m.policy.clone() {
            Policy::Skip => Ok(()),
            Policy::DeadLetter(topic) => {
                let mut headers = r.headers.clone();
                let stage = m.stage.clone();
                for (k, v) in [
                    ("streamrt.error", msg),
                    ("streamrt.error.kind", kind.to_string()),
                    ("streamrt.stage", stage),
                    ("streamrt.module.version", "fake".to_string()),
                    ("streamrt.source.topic", r.topic.clone()),
                    ("streamrt.source.partition", r.partition.to_string()),
                    ("streamrt.source.offset", r.offset.to_string()),
                ] {
                    headers.push(OwnedHeader {
                        key: k.as_bytes().to_vec(),
                        value: Some(v.into_bytes()),
                    });
                }
                m.emitted.push(Emitted {
                    topic,
                    key: r.key.clone(),
                    value: r.value.clone(),
                    headers,
                    timestamp: r.timestamp,
                });
                Ok(())
            }
            Policy::Fail => Err(Stopped {
                topic: r.topic.clone(),
                partition: r.partition,
                offset: r.offset,
                reason: msg,
            }),
        }
    }
}

type Caller<'h> = dyn FnMut(&Rc<RefCell<Model>>, u32, &[u8]) -> Call + 'h;

/// The fake host's state: committed-or-not stores with an undo journal, and
/// the per-call state of the engine's batch host.
struct Model {
    stage: String,
    stores: Vec<(String, BTreeMap<Vec<u8>, Vec<u8>>)>,
    /// Indexes of the stores that are tables.
    read_only: Vec<usize>,
    outputs: Vec<(String, String)>,
    policy: Policy,
    stream_time: i64,
    stopped: Option<Stopped>,

    /// (store, key, previous value) of every write since the last commit.
    journal: Vec<(usize, Vec<u8>, Option<Vec<u8>>)>,
    emitted: Vec<Emitted>,
    failures: Vec<Failure>,
    record_errors: Vec<(i32, String)>,
    logs: Vec<(i32, String)>,
    emit_batches: Vec<usize>,
    get_too_small: usize,
    next_too_small: usize,

    // The current call.
    in_call: bool,
    count: usize,
    timestamps: Vec<i64>,
    /// Effects are attributed to records as two streams, each in record
    /// order, as the host keeps them: writes (marks into the journal) and
    /// emits (marks into `emitted`). A guest that buffers its emits hands
    /// a record's over after later records' writes.
    writes: Stream,
    emits: Stream,
    /// A stream went back to an earlier record: undo by record is
    /// impossible, and the batch is replayed one record per call.
    interleaved: bool,
    failed: BTreeMap<i32, String>,
    batch_msg: String,
    iters: Vec<Option<FakeIter>>,
    /// The call is a query: writes, emits and record errors are refused,
    /// and `response` takes the guest's answer.
    querying: bool,
    response: Option<Response>,
}

/// Which record's effects are at the tail of a stream, and where they start.
#[derive(Clone, Copy)]
struct Stream {
    rec: i32,
    mark: usize,
}

impl Stream {
    const START: Stream = Stream {
        rec: abi::NO_RECORD,
        mark: 0,
    };
}

struct FakeIter {
    entries: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
    pending: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            stage: "stage".to_string(),
            stores: Vec::new(),
            read_only: Vec::new(),
            outputs: Vec::new(),
            policy: Policy::DeadLetter("dlq".to_string()),
            stream_time: -1,
            stopped: None,
            journal: Vec::new(),
            emitted: Vec::new(),
            failures: Vec::new(),
            record_errors: Vec::new(),
            logs: Vec::new(),
            emit_batches: Vec::new(),
            get_too_small: 0,
            next_too_small: 0,
            in_call: false,
            count: 0,
            timestamps: Vec::new(),
            writes: Stream::START,
            emits: Stream::START,
            interleaved: false,
            failed: BTreeMap::new(),
            batch_msg: String::new(),
            iters: Vec::new(),
            querying: false,
            response: None,
        }
    }
}

const OK: i32 = 0;

impl Model {
    fn store_index(&self, name: &str) -> usize {
        self.stores
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("FakeHost: no store {:?} declared", name))
    }

    fn marks(&self) -> (usize, usize) {
        (self.journal.len(), self.emitted.len())
    }

    fn rollback(&mut self, mark: usize) {
        while self.journal.len() > mark {
            let (s, k, old) = self.journal.pop().unwrap();
            match old {
                Some(v) => self.stores[s].1.insert(k, v),
                None => self.stores[s].1.remove(&k),
            };
        }
    }

    fn begin(&mut self, count: usize, recs: &[OwnedRecord]) {
        self.in_call = true;
        self.count = count;
        self.timestamps = recs.iter().map(|r| r.timestamp).collect();
        self.writes = Stream::START;
        self.emits = Stream::START;
        self.interleaved = false;
        self.failed.clear();
        self.batch_msg.clear();
    }

    fn end(&mut self) {
        self.in_call = false;
        self.iters.clear();
    }

    /// Notes that record `rec` is about to cause an effect in the stream
    /// whose tail is now at `mark`. False for a record index outside the
    /// batch.
    fn attribute(&mut self, emit: bool, rec: i32) -> bool {
        let (journal, emitted) = self.marks();
        let (stream, mark) = if emit {
            (&mut self.emits, emitted)
        } else {
            (&mut self.writes, journal)
        };
        if rec == stream.rec || rec == abi::NO_RECORD {
            return true;
        }
        if rec < abi::NO_RECORD || rec >= self.count as i32 {
            return false;
        }
        if rec < stream.rec {
            self.interleaved = true;
            return true;
        }
        *stream = Stream { rec, mark };
        true
    }

    fn write(
        &mut self,
        store: i32,
        rec: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        delete: bool,
    ) -> i32 {
        if !self.in_call {
            return Code::NotAllowed.raw();
        }
        let key = match key {
            Some(k) => k,
            None => return Code::Invalid.raw(),
        };
        if store < 0 || store as usize >= self.stores.len() {
            return Code::UnknownStore.raw();
        }
        if self.querying || self.read_only.contains(&(store as usize)) {
            return Code::ReadOnly.raw();
        }
        if !delete && value.is_none() {
            return Code::Invalid.raw();
        }
        if !self.attribute(false, rec) {
            return Code::Invalid.raw();
        }
        let s = store as usize;
        let old = if delete {
            self.stores[s].1.remove(key)
        } else {
            self.stores[s]
                .1
                .insert(key.to_vec(), value.unwrap_or(&[]).to_vec())
        };
        self.journal.push((s, key.to_vec(), old));
        OK
    }
}

impl Host for Model {
    fn store_open(&mut self, name: &[u8]) -> i32 {
        if !self.in_call {
            return Code::NotAllowed.raw();
        }
        match self.stores.iter().position(|(n, _)| n.as_bytes() == name) {
            Some(i) => i as i32,
            None => Code::UnknownStore.raw(),
        }
    }

    fn store_get(&mut self, store: i32, key: Option<&[u8]>, buf: &mut [u8]) -> i32 {
        if !self.in_call {
            return Code::NotAllowed.raw();
        }
        let key = match key {
            Some(k) => k,
            None => return Code::Invalid.raw(),
        };
        if store < 0 || store as usize >= self.stores.len() {
            return Code::UnknownStore.raw();
        }
        match self.stores[store as usize].1.get(key) {
            None => Code::NotFound.raw(),
            Some(v) => {
                if v.len() <= buf.len() {
                    buf[..v.len()].copy_from_slice(v);
                } else {
                    self.get_too_small += 1;
                }
                v.len() as i32
            }
        }
    }

    fn store_put(&mut self, store: i32, rec: i32, key: Option<&[u8]>, value: Option<&[u8]>) -> i32 {
        self.write(store, rec, key, value, false)
    }

    fn store_delete(&mut self, store: i32, rec: i32, key: Option<&[u8]>) -> i32 {
        self.write(store, rec, key, None, true)
    }

    fn store_range(&mut self, store: i32, start: Option<&[u8]>, end: Option<&[u8]>) -> i32 {
        if !self.in_call {
            return Code::NotAllowed.raw();
        }
        if store < 0 || store as usize >= self.stores.len() {
            return Code::UnknownStore.raw();
        }
        let entries: Vec<(Vec<u8>, Vec<u8>)> = self.stores[store as usize]
            .1
            .iter()
            .filter(|(k, _)| {
                start.map_or(true, |s| k.as_slice() >= s) && end.map_or(true, |e| k.as_slice() < e)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.iters.push(Some(FakeIter {
            entries: entries.into_iter(),
            pending: None,
        }));
        (self.iters.len() - 1) as i32
    }

    fn range_next(&mut self, iter: i32, buf: &mut [u8]) -> i32 {
        let it = match self.iters.get_mut(iter.max(0) as usize) {
            Some(Some(it)) if iter >= 0 => it,
            _ => return Code::BadIterator.raw(),
        };
        let mut n = 0;
        let mut too_small = false;
        while let Some((k, v)) = it.pending.take().or_else(|| it.entries.next()) {
            let size = abi::entry_size(&k, &v);
            if n + size > buf.len() {
                it.pending = Some((k, v));
                if n == 0 {
                    too_small = true;
                    n = size;
                }
                break;
            }
            let mut e = Vec::with_capacity(size);
            abi::append_entry(&mut e, &k, &v);
            buf[n..n + size].copy_from_slice(&e);
            n += size;
        }
        if too_small {
            self.next_too_small += 1;
        }
        n as i32
    }

    fn range_close(&mut self, iter: i32) -> i32 {
        match self.iters.get_mut(iter.max(0) as usize) {
            Some(slot @ Some(_)) if iter >= 0 => {
                *slot = None;
                OK
            }
            _ => Code::BadIterator.raw(),
        }
    }

    fn output_open(&mut self, name: &[u8]) -> i32 {
        if !self.in_call || self.querying {
            return Code::NotAllowed.raw();
        }
        match self.outputs.iter().position(|(n, _)| n.as_bytes() == name) {
            Some(i) => i as i32,
            None => Code::UnknownOutput.raw(),
        }
    }

    fn emit(
        &mut self,
        output: i32,
        rec: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[u8],
        ts: i64,
    ) -> i32 {
        if !self.in_call || self.querying {
            return Code::NotAllowed.raw();
        }
        if output < 0 || output as usize >= self.outputs.len() {
            return Code::UnknownOutput.raw();
        }
        if rec < abi::NO_RECORD || rec >= self.count as i32 {
            return Code::Invalid.raw();
        }
        let headers = if headers.is_empty() {
            Vec::new()
        } else {
            match Headers::decode_list(headers) {
                Ok(hs) => hs.map(OwnedHeader::from).collect(),
                Err(_) => return Code::Invalid.raw(),
            }
        };
        if !self.attribute(true, rec) {
            return Code::Invalid.raw();
        }
        let timestamp = if ts != abi::INHERIT_TIMESTAMP {
            ts
        } else if rec >= 0 {
            self.timestamps
                .get(rec as usize)
                .copied()
                .unwrap_or(self.stream_time)
        } else {
            self.stream_time
        };
        let topic = self.outputs[output as usize].1.clone();
        self.emitted.push(Emitted {
            topic,
            key: key.map(|k| k.to_vec()),
            value: value.map(|v| v.to_vec()),
            headers,
            timestamp,
        });
        OK
    }

    fn emit_batch(&mut self, buf: &[u8]) -> i32 {
        self.emit_batches.push(buf.len());
        if !self.in_call || self.querying {
            return Code::NotAllowed.raw();
        }
        emit_entries(self, buf)
    }

    fn log(&mut self, level: i32, msg: &[u8]) {
        self.logs
            .push((level, String::from_utf8_lossy(msg).into_owned()));
    }

    fn record_error(&mut self, rec: i32, msg: &[u8]) -> i32 {
        if self.querying {
            return Code::NotAllowed.raw();
        }
        let msg = String::from_utf8_lossy(msg).into_owned();
        self.record_errors.push((rec, msg.clone()));
        if rec == abi::NO_RECORD {
            self.batch_msg = msg;
            return OK;
        }
        if rec < 0 || rec >= self.count as i32 {
            return Code::Invalid.raw();
        }
        // A stream whose tail is a later record holds this record's
        // effects, if any, before that record's: they cannot be undone
        // alone, and the batch is replayed record by record instead.
        if self.writes.rec > rec || self.emits.rec > rec {
            self.interleaved = true;
        } else if !self.interleaved {
            if self.writes.rec == rec {
                self.rollback(self.writes.mark);
            }
            if self.emits.rec == rec {
                self.emitted.truncate(self.emits.mark);
            }
        }
        self.failed.insert(rec, msg);
        OK
    }

    fn respond(&mut self, status: i32, content_type: &[u8], body: &[u8]) -> i32 {
        if !self.querying || self.response.is_some() {
            return Code::NotAllowed.raw();
        }
        if !(abi::MIN_STATUS..=abi::MAX_STATUS).contains(&status) {
            return Code::Invalid.raw();
        }
        self.response = Some(Response {
            status: status as u16,
            content_type: String::from_utf8_lossy(content_type).into_owned(),
            body: body.to_vec(),
        });
        OK
    }
}
