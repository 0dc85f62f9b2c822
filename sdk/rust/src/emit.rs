use std::borrow::Cow;
use std::fmt;

use crate::abi::{self, Code, Header, Headers};
use crate::error::{Error, Result};
use crate::guest::{self, Handle, Instance, INST};
use crate::sys;

/// A handle to one of the stage's named outputs, which the app's
/// configuration maps to topics. Like [`crate::Store`], it asks the host on
/// first use and keeps the answer, so outputs can be statics:
///
/// ```ignore
/// static COUNTS: Output = Output::new("counts");
/// COUNTS.emit(r.key, Some(b"1"))?;
/// ```
///
/// [`emit`] does the same by name, remembering the outputs it has opened.
pub struct Output {
    name: Cow<'static, str>,
    handle: Handle,
}

impl Output {
    /// The output named `name`, for a `static`.
    pub const fn new(name: &'static str) -> Output {
        Output {
            name: Cow::Borrowed(name),
            handle: Handle::new(),
        }
    }

    /// The output named `name`, when the name is known only at run time.
    pub fn named(name: impl Into<String>) -> Output {
        Output {
            name: Cow::Owned(name.into()),
            handle: Handle::new(),
        }
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> Result<i32> {
        let rc = self.handle.get(Code::UnknownOutput.raw(), || {
            let (p, n) = sys::arg(self.name.as_bytes());
            unsafe { sys::output_open(p, n) }
        });
        if rc < 0 {
            return Err(Error::host("output_open", &self.name, rc));
        }
        Ok(rc)
    }

    /// Produces a record with `key` and `value` (`None` is null; a null
    /// value is a tombstone) and the timestamp of the input record being
    /// handled (the stream time outside one).
    ///
    /// The emit is attributed to the record being handled, so the host drops
    /// it if that record fails. Key and value are copied before it returns:
    /// during a batch into the SDK's emit buffer, which goes to the host in
    /// one call when it fills and when the batch ends (see [`flush`]), and
    /// outside a batch to the host at once. An undeclared output is an
    /// error at once either way.
    #[inline]
    pub fn emit(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<()> {
        self.emit_with(key, value, EmitOptions::new())
    }

    /// [`Output::emit`] with headers or a timestamp.
    pub fn emit_with(
        &self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        opts: EmitOptions<'_>,
    ) -> Result<()> {
        let h = self.open()?;
        let ts = opts.timestamp.unwrap_or(abi::INHERIT_TIMESTAMP);
        let hdr_len = opts.headers.list_len();
        let size = abi::EMIT_FIXED_SIZE + len(key) + len(value) + hdr_len;
        INST.with(|inst| {
            let rec = inst.current.get();
            {
                let mut b = inst.emits.borrow_mut();
                if b.len() + size <= inst.emit_limit.get() {
                    put(&mut b, h, rec, ts, key, value, opts.headers, hdr_len);
                    return Ok(());
                }
            }
            self.emit_full(inst, h, rec, ts, key, value, opts.headers, size)
        })
    }

    /// Emits a record that does not fit in the emit buffer, which is full,
    /// or off outside a batch. What the buffer holds goes first, so that the
    /// records reach the host in order; a record larger than the whole
    /// buffer then goes alone, through `emit`.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn emit_full(
        &self,
        inst: &Instance,
        h: i32,
        rec: i32,
        ts: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: HeaderSource<'_>,
        size: usize,
    ) -> Result<()> {
        guest::flush_emits(inst)?;
        if size <= inst.emit_limit.get() {
            let hdr_len = headers.list_len();
            put(
                &mut inst.emits.borrow_mut(),
                h,
                rec,
                ts,
                key,
                value,
                headers,
                hdr_len,
            );
            return Ok(());
        }
        let (kp, kl) = sys::nullable(key);
        let (vp, vl) = sys::nullable(value);
        let mut list = inst.headers.borrow_mut();
        list.clear();
        headers.append_list(&mut list);
        let (hp, hl) = sys::arg(&list);
        let rc = unsafe { sys::emit(h, rec, kp, kl, vp, vl, hp, hl, ts) };
        if rc < 0 {
            return Err(Error::host("emit", &self.name, rc));
        }
        Ok(())
    }
}

fn len(b: Option<&[u8]>) -> usize {
    b.map_or(0, |b| b.len())
}

/// Appends one emit entry to the buffer, which has room for it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn put(
    b: &mut Vec<u8>,
    h: i32,
    rec: i32,
    ts: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: HeaderSource<'_>,
    hdr_len: usize,
) {
    abi::append_emit_head(b, h, rec, ts, key, value, hdr_len);
    append_bytes(b, key.unwrap_or(&[]));
    append_bytes(b, value.unwrap_or(&[]));
    headers.append_list(b);
}

/// Appends `src` to `dst` as `extend_from_slice` does, faster for the sizes
/// of keys and values. On wasm32 without bulk memory, which Debian's rustc
/// targets, a copy of unknown size is a call to a `memcpy` that moves four
/// bytes per loop iteration, and a loop iteration costs the host's
/// termination check when a stage has a deadline. This one moves eight
/// bytes at a time, in overlapping moves without a loop up to 128 bytes,
/// and 32 bytes per iteration beyond.
#[inline(always)]
fn append_bytes(dst: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    dst.reserve(n);
    // SAFETY: dst has room for n more bytes, and every move below reads
    // and writes within src[..n] and the n bytes past dst's length.
    unsafe {
        let d = dst.as_mut_ptr().add(dst.len());
        copy(d, src.as_ptr(), n);
        dst.set_len(dst.len() + n);
    }
}

/// Copies n bytes from s to d, which do not overlap.
#[inline(always)]
unsafe fn copy(d: *mut u8, s: *const u8, n: usize) {
    #[inline(always)]
    unsafe fn mov8(d: *mut u8, s: *const u8, at: usize) {
        (d.add(at) as *mut u64).write_unaligned((s.add(at) as *const u64).read_unaligned())
    }
    #[inline(always)]
    unsafe fn mov32(d: *mut u8, s: *const u8, at: usize) {
        mov8(d, s, at);
        mov8(d, s, at + 8);
        mov8(d, s, at + 16);
        mov8(d, s, at + 24);
    }
    match n {
        0 => {}
        1..=3 => {
            // The first, the middle and the last byte cover 1 to 3.
            *d = *s;
            *d.add(n / 2) = *s.add(n / 2);
            *d.add(n - 1) = *s.add(n - 1);
        }
        4..=7 => {
            (d as *mut u32).write_unaligned((s as *const u32).read_unaligned());
            (d.add(n - 4) as *mut u32)
                .write_unaligned((s.add(n - 4) as *const u32).read_unaligned());
        }
        8..=16 => {
            mov8(d, s, 0);
            mov8(d, s, n - 8);
        }
        17..=32 => {
            mov8(d, s, 0);
            mov8(d, s, 8);
            mov8(d, s, n - 16);
            mov8(d, s, n - 8);
        }
        33..=64 => {
            mov32(d, s, 0);
            mov32(d, s, n - 32);
        }
        65..=128 => {
            mov32(d, s, 0);
            mov32(d, s, 32);
            mov32(d, s, n - 64);
            mov32(d, s, n - 32);
        }
        _ => {
            let mut at = 0;
            while at + 32 < n {
                mov32(d, s, at);
                at += 32;
            }
            mov32(d, s, n - 32);
        }
    }
}

/// Hands the records that emits have buffered to the host now. The SDK does
/// so itself when the buffer fills and when a batch ends, which is all a
/// stage needs: `flush` is for code that also calls [`sys::emit`] or
/// [`sys::emit_batch`] and wants those records to come after the buffered
/// ones. Outside a batch there is nothing to flush. A flush the host
/// refuses fails the batch.
pub fn flush() -> Result<()> {
    INST.with(guest::flush_emits)
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Output").field(&self.name).finish()
    }
}

/// Headers and a timestamp for [`emit_with`] and [`Output::emit_with`].
///
/// ```ignore
/// let hs = [Header::new(b"trace", b"abc"), Header::null(b"gone")];
/// emit_with("out", r.key, r.value, EmitOptions::new().headers(&hs).timestamp(1_700_000_000_000))?;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct EmitOptions<'a> {
    headers: HeaderSource<'a>,
    timestamp: Option<i64>,
}

#[derive(Clone, Copy, Debug, Default)]
enum HeaderSource<'a> {
    #[default]
    None,
    List(&'a [Header<'a>]),
    Record(Headers<'a>),
}

impl<'a> HeaderSource<'a> {
    /// The size of the header list the record carries: 0 for none, which
    /// is what an input record without headers gives.
    fn list_len(&self) -> usize {
        match self {
            HeaderSource::None => 0,
            HeaderSource::Record(hs) if hs.is_empty() => 0,
            HeaderSource::Record(hs) => 4 + hs.raw().len(),
            HeaderSource::List(hs) => {
                4 + hs
                    .iter()
                    .map(|h| 8 + h.key.len() + h.value.map_or(0, |v| v.len()))
                    .sum::<usize>()
            }
        }
    }

    /// Appends the header list, of `list_len` bytes.
    #[inline]
    fn append_list(&self, dst: &mut Vec<u8>) {
        match self {
            HeaderSource::None => {}
            HeaderSource::Record(hs) if hs.is_empty() => {}
            HeaderSource::Record(hs) => {
                // A record's header pairs are already encoded as emit takes
                // them: only the count goes in front.
                dst.extend_from_slice(&(hs.len() as u32).to_le_bytes());
                dst.extend_from_slice(hs.raw());
            }
            HeaderSource::List(hs) => abi::append_headers(dst, hs.iter().copied()),
        }
    }
}

impl<'a> EmitOptions<'a> {
    /// No headers, the inherited timestamp.
    pub fn new() -> EmitOptions<'a> {
        EmitOptions::default()
    }

    /// Gives the record these headers (replacing any set before).
    pub fn headers(mut self, hs: &'a [Header<'a>]) -> EmitOptions<'a> {
        self.headers = HeaderSource::List(hs);
        self
    }

    /// Gives the record an input record's headers, as they are: pass
    /// `r.headers()`. This copies the encoded headers once and decodes
    /// nothing.
    pub fn record_headers(mut self, hs: Headers<'a>) -> EmitOptions<'a> {
        self.headers = HeaderSource::Record(hs);
        self
    }

    /// Sets the record's timestamp in milliseconds since the Unix epoch. -1
    /// ([`abi::INHERIT_TIMESTAMP`]) is the default: the input record's
    /// timestamp.
    pub fn timestamp(mut self, ms: i64) -> EmitOptions<'a> {
        self.timestamp = Some(ms);
        self
    }
}

/// Produces a record to the named output: [`Output::emit`] by name. The
/// SDK keeps the outputs it opened, so naming them costs a string compare.
/// An undeclared output is an error whose [`Error::code`] is
/// [`Code::UnknownOutput`].
#[inline]
pub fn emit(output: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<()> {
    emit_with(output, key, value, EmitOptions::new())
}

/// [`emit`] with headers or a timestamp.
pub fn emit_with(
    output: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    opts: EmitOptions<'_>,
) -> Result<()> {
    INST.with(|inst| {
        let outputs = inst.outputs.borrow();
        let last = inst.last_output.get();
        if let Some(o) = outputs.get(last) {
            if o.name() == output {
                return o.emit_with(key, value, opts);
            }
        }
        if let Some(i) = outputs.iter().position(|o| o.name() == output) {
            inst.last_output.set(i);
            return outputs[i].emit_with(key, value, opts);
        }
        drop(outputs);
        inst.outputs.borrow_mut().push(Output::named(output));
        let outputs = inst.outputs.borrow();
        inst.last_output.set(outputs.len() - 1);
        outputs[outputs.len() - 1].emit_with(key, value, opts)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn append_bytes_copies_every_size() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=src.len() {
            for pre in [0usize, 1, 5] {
                let mut dst = vec![0xaa; pre];
                super::append_bytes(&mut dst, &src[..n]);
                assert_eq!(dst.len(), pre + n);
                assert!(dst[..pre].iter().all(|&b| b == 0xaa), "n={}", n);
                assert_eq!(&dst[pre..], &src[..n], "n={} pre={}", n, pre);
            }
        }
    }
}
