use std::borrow::Cow;
use std::fmt;

use crate::abi::{self, Code, Header, Headers};
use crate::error::{Error, Result};
use crate::guest::{Handle, INST};
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
    /// it if that record fails. The host copies key and value before it
    /// returns.
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
        let (kp, kl) = sys::nullable(key);
        let (vp, vl) = sys::nullable(value);
        let ts = opts.timestamp.unwrap_or(abi::INHERIT_TIMESTAMP);
        let rec = crate::guest::current();
        let rc = match opts.headers {
            HeaderSource::None => unsafe {
                sys::emit(h, rec, kp, kl, vp, vl, std::ptr::null(), 0, ts)
            },
            HeaderSource::Record(hs) if hs.is_empty() => unsafe {
                sys::emit(h, rec, kp, kl, vp, vl, std::ptr::null(), 0, ts)
            },
            source => INST.with(|inst| {
                let mut list = inst.headers.borrow_mut();
                list.clear();
                match source {
                    HeaderSource::List(hs) => abi::append_headers(&mut list, hs.iter().copied()),
                    HeaderSource::Record(hs) => {
                        // A record's header pairs are already encoded as emit
                        // takes them: only the count goes in front.
                        list.extend_from_slice(&(hs.len() as u32).to_le_bytes());
                        list.extend_from_slice(hs.raw());
                    }
                    HeaderSource::None => {}
                }
                let (hp, hl) = sys::arg(&list);
                unsafe { sys::emit(h, rec, kp, kl, vp, vl, hp, hl, ts) }
            }),
        };
        if rc < 0 {
            return Err(Error::host("emit", &self.name, rc));
        }
        Ok(())
    }
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
