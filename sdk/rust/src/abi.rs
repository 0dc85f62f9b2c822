//! The constants and encodings of host ABI v1 (`abi/ABI.md` in the streamrt
//! repository), mirroring the Go package `github.com/streamrt/streamrt/abi`.
//!
//! The decoders copy nothing: what they return borrows the buffer they read.
//! The encoders append to a `Vec<u8>`; the SDK uses them for header lists, and
//! tests (and [`crate::testing::FakeHost`]) for whole batches. The golden
//! vectors in `abi/testdata/*.vec` pin every encoding byte by byte, and this
//! crate's tests check both directions against them.

use std::fmt;

/// The ABI version this crate implements.
pub const VERSION: i32 = 1;

/// The minor version of ABI 1 this crate implements: 1.1 added query
/// handlers (`streamrt_query`, `respond`), 1.2 `emit_batch`. Minor versions
/// add to the ABI without changing what was there; the import module and
/// [`VERSION`] stay the same.
pub const MINOR: i32 = 2;

/// The Wasm import module the host provides its functions under.
pub const IMPORT_MODULE: &str = "streamrt_v1";

/// The length that marks an absent (null) key, value or range bound, as
/// opposed to an empty one.
pub const NULL: i32 = -1;

/// The record index of effects and errors that belong to the batch as a
/// whole rather than to one record.
pub const NO_RECORD: i32 = -1;

/// The timestamp that makes `emit` inherit the input record's timestamp (or
/// the stream time outside a record).
pub const INHERIT_TIMESTAMP: i64 = -1;

/// Size of a batch header with an empty topic table.
pub const BATCH_HEADER_SIZE: usize = 4 + 8 + 2;

/// Size of a record's fixed part, before its key.
pub const RECORD_FIXED_SIZE: usize = 1 + 2 + 4 + 8 + 8;

const FLAG_KEY: u8 = 1 << 0;
const FLAG_VALUE: u8 = 1 << 1;
const NULL_HEADER: u32 = 0xFFFF_FFFF;

/// Log levels of the `log` host function.
pub mod level {
    pub const DEBUG: i32 = 0;
    pub const INFO: i32 = 1;
    pub const WARN: i32 = 2;
    pub const ERROR: i32 = 3;
}

/// A status a host function returned. Non-negative results carry a value (a
/// handle, a length); negative ones are these codes, whose values never
/// change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// `-1`: no value for the key.
    NotFound,
    /// `-2`: store not declared for the stage, or a bad handle.
    UnknownStore,
    /// `-3`: output not declared for the stage, or a bad handle.
    UnknownOutput,
    /// `-4`: write to a store the stage may only read.
    ReadOnly,
    /// `-5`: bad argument (memory outside the guest's, a null store key or
    /// value, a record index outside the batch).
    Invalid,
    /// `-6`: unknown or closed iterator.
    BadIterator,
    /// `-7`: key or value over the host's limit.
    TooLarge,
    /// `-8`: the host failed (such as I/O); it retries the batch.
    Internal,
    /// `-9`: the call is not allowed here.
    NotAllowed,
    /// A negative result this SDK does not know.
    Other(i32),
}

impl Code {
    /// The code of a negative host result, or `None` for a non-negative one.
    pub fn from_result(rc: i32) -> Option<Code> {
        Some(match rc {
            rc if rc >= 0 => return None,
            -1 => Code::NotFound,
            -2 => Code::UnknownStore,
            -3 => Code::UnknownOutput,
            -4 => Code::ReadOnly,
            -5 => Code::Invalid,
            -6 => Code::BadIterator,
            -7 => Code::TooLarge,
            -8 => Code::Internal,
            -9 => Code::NotAllowed,
            other => Code::Other(other),
        })
    }

    /// The code's value in the ABI, such as `-2`.
    pub fn raw(self) -> i32 {
        match self {
            Code::NotFound => -1,
            Code::UnknownStore => -2,
            Code::UnknownOutput => -3,
            Code::ReadOnly => -4,
            Code::Invalid => -5,
            Code::BadIterator => -6,
            Code::TooLarge => -7,
            Code::Internal => -8,
            Code::NotAllowed => -9,
            Code::Other(c) => c,
        }
    }
}

/// The code's text, as the Go `abi.Code.String` spells it ("unknown store").
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Code::NotFound => "not found",
            Code::UnknownStore => "unknown store",
            Code::UnknownOutput => "unknown output",
            Code::ReadOnly => "store is read-only",
            Code::Invalid => "invalid argument",
            Code::BadIterator => "bad iterator",
            Code::TooLarge => "too large",
            Code::Internal => "host internal error",
            Code::NotAllowed => "not allowed",
            Code::Other(c) => return write!(f, "code {}", c),
        })
    }
}

/// Where and why a decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was being read, such as "record 3 value".
    pub what: String,
    /// Byte offset into the encoding.
    pub offset: usize,
    /// Why, such as "truncated encoding".
    pub reason: String,
}

impl DecodeError {
    fn new(what: impl Into<String>, offset: usize, reason: impl Into<String>) -> DecodeError {
        DecodeError {
            what: what.into(),
            offset,
            reason: reason.into(),
        }
    }
}

const TRUNCATED: &str = "truncated encoding";

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "streamrt: abi: decode {} at byte {}: {}",
            self.what, self.offset, self.reason
        )
    }
}

impl std::error::Error for DecodeError {}

/// One header of a record, borrowed from the buffer it was decoded from. A
/// `None` value is null, distinct from an empty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    /// A header with a value.
    pub fn new(key: &'a [u8], value: &'a [u8]) -> Header<'a> {
        Header {
            key,
            value: Some(value),
        }
    }

    /// A header with a null value.
    pub fn null(key: &'a [u8]) -> Header<'a> {
        Header { key, value: None }
    }
}

/// The headers of one record as the batch encodes them: decoded on
/// iteration, which cannot fail because the batch decoder checked them.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    buf: &'a [u8],
    left: u32,
}

impl<'a> Headers<'a> {
    /// Headers from a header list as `emit` takes it (`count:u32 header*`).
    pub fn decode_list(b: &'a [u8]) -> Result<Headers<'a>, DecodeError> {
        if b.len() < 4 {
            return Err(DecodeError::new("header count", 0, TRUNCATED));
        }
        let n = u32_at(b, 0);
        let end =
            skip_headers(b, 4, n).map_err(|(off, why)| DecodeError::new("headers", off, why))?;
        if end != b.len() {
            return Err(DecodeError::new(
                "headers",
                end,
                format!("{} trailing bytes", b.len() - end),
            ));
        }
        Ok(Headers {
            buf: &b[4..],
            left: n,
        })
    }

    /// An empty header list.
    pub const fn empty() -> Headers<'static> {
        Headers { buf: &[], left: 0 }
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.left as usize
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The encoded header pairs, without the count.
    pub fn raw(&self) -> &'a [u8] {
        self.buf
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let b = self.buf;
        let kl = u32_at(b, 0) as usize;
        let key = &b[4..4 + kl];
        let vl = u32_at(b, 4 + kl);
        let mut rest = 8 + kl;
        let value = if vl == NULL_HEADER {
            None
        } else {
            let v = &b[rest..rest + vl as usize];
            rest += vl as usize;
            Some(v)
        };
        self.buf = &b[rest..];
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

impl<'a> fmt::Debug for Headers<'a> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(*self).finish()
    }
}

/// Checks `n` header pairs starting at `pos` and returns where they end, or
/// the offset and reason of the failure.
#[inline]
fn skip_headers(b: &[u8], mut pos: usize, n: u32) -> Result<usize, (usize, &'static str)> {
    // Each pair takes at least 8 bytes, which bounds n.
    if n as usize > (b.len() - pos) / 8 {
        return Err((pos, TRUNCATED));
    }
    for _ in 0..n {
        if b.len() - pos < 4 {
            return Err((pos, TRUNCATED));
        }
        let kl = u32_at(b, pos) as usize;
        pos += 4;
        if kl > b.len() - pos {
            return Err((pos, TRUNCATED));
        }
        pos += kl;
        if b.len() - pos < 4 {
            return Err((pos, TRUNCATED));
        }
        let vl = u32_at(b, pos);
        pos += 4;
        if vl != NULL_HEADER {
            if vl as usize > b.len() - pos {
                return Err((pos, TRUNCATED));
            }
            pos += vl as usize;
        }
    }
    Ok(pos)
}

/// One record of a batch as the decoder returns it, borrowing the batch.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Headers<'a>,
}

/// Decodes a batch one record at a time without copying.
pub struct BatchReader<'a> {
    buf: &'a [u8],
    pos: usize,
    count: u32,
    read: u32,
    stream_time: i64,
    topics: Vec<&'a str>,
}

impl<'a> BatchReader<'a> {
    /// Reads the batch header and topic table of `buf`.
    pub fn new(buf: &'a [u8]) -> Result<BatchReader<'a>, DecodeError> {
        let mut r = BatchReader {
            buf,
            pos: 0,
            count: 0,
            read: 0,
            stream_time: -1,
            topics: Vec::new(),
        };
        r.reset(buf)?;
        Ok(r)
    }

    fn reset(&mut self, buf: &'a [u8]) -> Result<(), DecodeError> {
        if buf.len() < BATCH_HEADER_SIZE {
            return Err(DecodeError::new("batch header", 0, TRUNCATED));
        }
        self.count = u32_at(buf, 0);
        self.stream_time = u64_at(buf, 4) as i64;
        let n = u16_at(buf, 12) as usize;
        self.pos = BATCH_HEADER_SIZE;
        self.topics.clear();
        for i in 0..n {
            let at = self.pos;
            let t = self
                .bytes16()
                .map_err(|why| DecodeError::new(format!("topic {}", i), at, why))?;
            let t = std::str::from_utf8(t).map_err(|_| {
                DecodeError::new(format!("topic {}", i), at, "topic name is not UTF-8")
            })?;
            self.topics.push(t);
        }
        Ok(())
    }

    /// The number of records in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The batch's stream time: the highest record timestamp the task has
    /// seen, this batch included, or -1 when unknown.
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// The batch's topic table.
    pub fn topics(&self) -> &[&'a str] {
        &self.topics
    }

    /// Decodes the next record; `None` after the last one (or an error when
    /// bytes follow it).
    #[inline]
    pub fn next_record(&mut self) -> Option<Result<RawRecord<'a>, DecodeError>> {
        if self.read == self.count {
            if self.pos != self.buf.len() {
                let extra = self.buf.len() - self.pos;
                let at = self.pos;
                self.pos = self.buf.len();
                return Some(Err(DecodeError::new(
                    "end of batch",
                    at,
                    format!("{} trailing bytes", extra),
                )));
            }
            return None;
        }
        let r = self.record();
        if r.is_err() {
            // Stop at the first error.
            self.read = self.count;
            self.pos = self.buf.len();
        }
        Some(r)
    }

    #[inline]
    fn record(&mut self) -> Result<RawRecord<'a>, DecodeError> {
        let i = self.read;
        let buf = self.buf;
        let start = self.pos;
        if buf.len() - start < RECORD_FIXED_SIZE {
            return Err(DecodeError::new(format!("record {}", i), start, TRUNCATED));
        }
        // The fixed part as an array: reading it needs no more bounds checks.
        let mut fixed = [0u8; RECORD_FIXED_SIZE];
        fixed.copy_from_slice(&buf[start..start + RECORD_FIXED_SIZE]);
        let flags = fixed[0];
        let ti = u16_at(&fixed, 1) as usize;
        let topic = match self.topics.get(ti) {
            Some(t) => *t,
            None => {
                return Err(DecodeError::new(
                    format!("record {} topic", i),
                    start,
                    format!(
                        "topic index {} outside a table of {}",
                        ti,
                        self.topics.len()
                    ),
                ))
            }
        };
        let partition = u32_at(&fixed, 3) as i32;
        let offset = u64_at(&fixed, 7) as i64;
        let timestamp = u64_at(&fixed, 15) as i64;
        self.pos += RECORD_FIXED_SIZE;
        let at = self.pos;
        let key = self
            .bytes32(flags & FLAG_KEY != 0)
            .map_err(|why| DecodeError::new(format!("record {} key", i), at, why))?;
        let at = self.pos;
        let value = self
            .bytes32(flags & FLAG_VALUE != 0)
            .map_err(|why| DecodeError::new(format!("record {} value", i), at, why))?;
        let at = self.pos;
        let headers = self.headers().map_err(|(off, why)| {
            DecodeError::new(format!("record {} headers", i), off.max(at), why)
        })?;
        self.read += 1;
        Ok(RawRecord {
            topic,
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }

    #[inline]
    fn headers(&mut self) -> Result<Headers<'a>, (usize, String)> {
        let buf = self.buf;
        if buf.len() - self.pos < 4 {
            return Err((self.pos, TRUNCATED.to_string()));
        }
        let n = u32_at(buf, self.pos);
        let start = self.pos + 4;
        let end = skip_headers(buf, start, n).map_err(|(off, why)| (off, why.to_string()))?;
        self.pos = end;
        Ok(Headers {
            buf: &buf[start..end],
            left: n,
        })
    }

    #[inline]
    fn bytes32(&mut self, present: bool) -> Result<Option<&'a [u8]>, String> {
        let buf = self.buf;
        if buf.len() - self.pos < 4 {
            return Err(TRUNCATED.to_string());
        }
        let n = u32_at(buf, self.pos) as usize;
        self.pos += 4;
        if n > buf.len() - self.pos {
            return Err(TRUNCATED.to_string());
        }
        if !present {
            if n != 0 {
                return Err(format!("null field with length {}", n));
            }
            return Ok(None);
        }
        let b = &buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(Some(b))
    }

    #[inline]
    fn bytes16(&mut self) -> Result<&'a [u8], &'static str> {
        let buf = self.buf;
        if buf.len() - self.pos < 2 {
            return Err(TRUNCATED);
        }
        let n = u16_at(buf, self.pos) as usize;
        self.pos += 2;
        if n > buf.len() - self.pos {
            return Err(TRUNCATED);
        }
        let b = &buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<RawRecord<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
    }
}

/// An owned record, for building batches to encode (tests, fake hosts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<OwnedHeader>,
}

/// An owned header; a `None` value is null.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedHeader {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

impl<'a> From<Header<'a>> for OwnedHeader {
    fn from(h: Header<'a>) -> OwnedHeader {
        OwnedHeader {
            key: h.key.to_vec(),
            value: h.value.map(|v| v.to_vec()),
        }
    }
}

impl<'a> From<RawRecord<'a>> for OwnedRecord {
    fn from(r: RawRecord<'a>) -> OwnedRecord {
        OwnedRecord {
            topic: r.topic.to_string(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key.map(|k| k.to_vec()),
            value: r.value.map(|v| v.to_vec()),
            headers: r.headers.map(OwnedHeader::from).collect(),
        }
    }
}

/// An owned batch, for encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub stream_time: i64,
    /// The topic table; records name their topic by index. Topics of records
    /// missing from it are added in order of appearance.
    pub topics: Vec<String>,
    pub records: Vec<OwnedRecord>,
}

/// Appends a batch header: the record count, the stream time and the topic
/// table.
pub fn append_batch_header(dst: &mut Vec<u8>, count: usize, stream_time: i64, topics: &[&str]) {
    dst.extend_from_slice(&(count as u32).to_le_bytes());
    dst.extend_from_slice(&stream_time.to_le_bytes());
    dst.extend_from_slice(&(topics.len() as u16).to_le_bytes());
    for t in topics {
        dst.extend_from_slice(&(t.len() as u16).to_le_bytes());
        dst.extend_from_slice(t.as_bytes());
    }
}

/// Appends one record without its headers; `header_count` headers must
/// follow, each appended with [`append_header`].
#[allow(clippy::too_many_arguments)]
pub fn append_record(
    dst: &mut Vec<u8>,
    topic: u16,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    header_count: usize,
) {
    let mut flags = 0u8;
    if key.is_some() {
        flags |= FLAG_KEY;
    }
    if value.is_some() {
        flags |= FLAG_VALUE;
    }
    dst.push(flags);
    dst.extend_from_slice(&topic.to_le_bytes());
    dst.extend_from_slice(&partition.to_le_bytes());
    dst.extend_from_slice(&offset.to_le_bytes());
    dst.extend_from_slice(&timestamp.to_le_bytes());
    for b in [key, value] {
        let b = b.unwrap_or(&[]);
        dst.extend_from_slice(&(b.len() as u32).to_le_bytes());
        dst.extend_from_slice(b);
    }
    dst.extend_from_slice(&(header_count as u32).to_le_bytes());
}

/// Appends one header pair.
pub fn append_header(dst: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    dst.extend_from_slice(&(key.len() as u32).to_le_bytes());
    dst.extend_from_slice(key);
    match value {
        None => dst.extend_from_slice(&NULL_HEADER.to_le_bytes()),
        Some(v) => {
            dst.extend_from_slice(&(v.len() as u32).to_le_bytes());
            dst.extend_from_slice(v);
        }
    }
}

/// Appends a header list as `emit` takes it: a count, then the pairs.
pub fn append_headers<'h>(dst: &mut Vec<u8>, hs: impl IntoIterator<Item = Header<'h>>) {
    let at = dst.len();
    dst.extend_from_slice(&0u32.to_le_bytes());
    let mut n = 0u32;
    for h in hs {
        append_header(dst, h.key, h.value);
        n += 1;
    }
    dst[at..at + 4].copy_from_slice(&n.to_le_bytes());
}

/// Encodes a whole batch.
pub fn encode_batch(b: &Batch) -> Vec<u8> {
    let mut topics: Vec<&str> = b.topics.iter().map(|s| s.as_str()).collect();
    for r in &b.records {
        if !topics.contains(&r.topic.as_str()) {
            topics.push(&r.topic);
        }
    }
    let mut out = Vec::new();
    append_batch_header(&mut out, b.records.len(), b.stream_time, &topics);
    for r in &b.records {
        let ti = topics.iter().position(|t| *t == r.topic).unwrap_or(0) as u16;
        append_record(
            &mut out,
            ti,
            r.partition,
            r.offset,
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.len(),
        );
        for h in &r.headers {
            append_header(&mut out, &h.key, h.value.as_deref());
        }
    }
    out
}

/// Appends one key/value entry as `range_next` writes them.
pub fn append_entry(dst: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    dst.extend_from_slice(&(key.len() as u32).to_le_bytes());
    dst.extend_from_slice(key);
    dst.extend_from_slice(&(value.len() as u32).to_le_bytes());
    dst.extend_from_slice(value);
}

/// The encoded size of one range entry.
pub fn entry_size(key: &[u8], value: &[u8]) -> usize {
    8 + key.len() + value.len()
}

/// Decodes the first entry of `b`, as written by `range_next`, and returns
/// its key, its value and the rest of `b`. Key and value borrow `b`.
pub fn next_entry(b: &[u8]) -> Result<(&[u8], &[u8], &[u8]), DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError::new("entry", 0, TRUNCATED));
    }
    let kl = u32_at(b, 0) as usize;
    if b.len() < 8 || kl > b.len() - 8 {
        return Err(DecodeError::new("entry key", 4, TRUNCATED));
    }
    let key = &b[4..4 + kl];
    let rest = &b[4 + kl..];
    let vl = u32_at(rest, 0) as usize;
    if vl > rest.len() - 4 {
        return Err(DecodeError::new("entry value", 8 + kl, TRUNCATED));
    }
    Ok((key, &rest[4..4 + vl], &rest[4 + vl..]))
}

/// The host function that takes a buffer of emit entries ([`append_emit`]):
/// `(ptr, len) -> i32`, 0 when every entry was emitted. A malformed buffer
/// is `ERR_INVALID` with nothing emitted; an entry the host refuses stops
/// the call with its code, the entries before it emitted. Added in ABI 1.2.
pub const FUNC_EMIT_BATCH: &str = "emit_batch";

/// Size of an emit entry before its key:
///
/// ```text
/// entry := output:i32 rec:i32 ts:i64 key_len:u32 value_len:u32 headers_len:u32
///          key value headers
/// ```
///
/// A `key_len` or `value_len` of `0xFFFFFFFF` is null (no bytes follow); a
/// `headers_len` of 0 is no headers, any other holds a header list as
/// `emit` takes it ([`append_headers`]).
pub const EMIT_FIXED_SIZE: usize = 4 + 4 + 8 + 4 + 4 + 4;

const NULL_LEN: u32 = 0xFFFF_FFFF;

/// One entry of an `emit_batch` buffer: the arguments of one `emit` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Emit<'a> {
    /// The output handle, from `output_open`.
    pub output: i32,
    /// The batch record the emit is made for, or [`NO_RECORD`].
    pub rec: i32,
    /// Milliseconds since the Unix epoch, or [`INHERIT_TIMESTAMP`].
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// An encoded header list ([`append_headers`]), or empty for none.
    pub headers: &'a [u8],
}

/// The encoded size of an emit entry with this key, value and header list.
pub fn emit_size(key: Option<&[u8]>, value: Option<&[u8]>, headers: &[u8]) -> usize {
    EMIT_FIXED_SIZE + key.map_or(0, |k| k.len()) + value.map_or(0, |v| v.len()) + headers.len()
}

/// Appends the fixed part of an emit entry; the key, the value and
/// `headers_len` bytes of header list must follow.
pub fn append_emit_head(
    dst: &mut Vec<u8>,
    output: i32,
    rec: i32,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers_len: usize,
) {
    let mut head = [0u8; EMIT_FIXED_SIZE];
    head[0..4].copy_from_slice(&output.to_le_bytes());
    head[4..8].copy_from_slice(&rec.to_le_bytes());
    head[8..16].copy_from_slice(&timestamp.to_le_bytes());
    head[16..20].copy_from_slice(&key.map_or(NULL_LEN, |k| k.len() as u32).to_le_bytes());
    head[20..24].copy_from_slice(&value.map_or(NULL_LEN, |v| v.len() as u32).to_le_bytes());
    head[24..28].copy_from_slice(&(headers_len as u32).to_le_bytes());
    dst.extend_from_slice(&head);
}

/// Appends one emit entry.
pub fn append_emit(dst: &mut Vec<u8>, e: &Emit<'_>) {
    append_emit_head(
        dst,
        e.output,
        e.rec,
        e.timestamp,
        e.key,
        e.value,
        e.headers.len(),
    );
    dst.extend_from_slice(e.key.unwrap_or(&[]));
    dst.extend_from_slice(e.value.unwrap_or(&[]));
    dst.extend_from_slice(e.headers);
}

/// Decodes the first emit entry of `b` and returns it with the rest of `b`.
/// It checks the entry whole, its header list included; the entry borrows
/// `b`.
pub fn next_emit(b: &[u8]) -> Result<(Emit<'_>, &[u8]), DecodeError> {
    if b.len() < EMIT_FIXED_SIZE {
        return Err(DecodeError::new("emit", 0, TRUNCATED));
    }
    let kl = u32_at(b, 16);
    let vl = u32_at(b, 20);
    let hl = u32_at(b, 24) as usize;
    let mut pos = EMIT_FIXED_SIZE;
    let mut field = |n: u32, what: &str| -> Result<Option<&[u8]>, DecodeError> {
        if n == NULL_LEN {
            return Ok(None);
        }
        let n = n as usize;
        if n > b.len() - pos {
            return Err(DecodeError::new(what, pos, TRUNCATED));
        }
        pos += n;
        Ok(Some(&b[pos - n..pos]))
    };
    let key = field(kl, "emit key")?;
    let value = field(vl, "emit value")?;
    if hl > b.len() - pos {
        return Err(DecodeError::new("emit headers", pos, TRUNCATED));
    }
    let headers = &b[pos..pos + hl];
    if hl > 0 {
        Headers::decode_list(headers)
            .map_err(|e| DecodeError::new("emit headers", pos + e.offset, e.reason))?;
    }
    let e = Emit {
        output: u32_at(b, 0) as i32,
        rec: u32_at(b, 4) as i32,
        timestamp: u64_at(b, 8) as i64,
        key,
        value,
        headers,
    };
    Ok((e, &b[pos + hl..]))
}

/// Decodes a whole `emit_batch` buffer; the entries borrow `b`.
pub fn decode_emits(b: &[u8]) -> Result<Vec<Emit<'_>>, DecodeError> {
    let mut out = Vec::new();
    let mut rest = b;
    while !rest.is_empty() {
        let at = b.len() - rest.len();
        let (e, r) = next_emit(rest).map_err(|e| {
            DecodeError::new(
                format!("{} (entry {})", e.what, out.len()),
                at + e.offset,
                e.reason,
            )
        })?;
        out.push(e);
        rest = r;
    }
    Ok(out)
}

/// The export a guest that serves HTTP routes defines: `(ptr, len i32) ->
/// i32`, called with one query request ([`QueryRequest`]) written into the
/// `streamrt_buffer`. 0 means the guest answered through `respond`.
pub const EXPORT_QUERY: &str = "streamrt_query";

/// The host function a query handler answers with: `(status, ctype_ptr,
/// ctype_len, body_ptr, body_len) -> i32`, once per `streamrt_query` call
/// and only there.
pub const FUNC_RESPOND: &str = "respond";

/// The lowest HTTP status a guest may respond with.
pub const MIN_STATUS: i32 = 200;
/// The highest HTTP status a guest may respond with.
pub const MAX_STATUS: i32 = 599;

/// The reason a [`DecodeError`] gives for a query request's text field
/// that is not UTF-8: a client's doing (a path such as `/a/%FF`) rather
/// than a malformed encoding.
pub const NOT_UTF8: &str = "not UTF-8";

/// One path parameter of a query request, such as `genre` in
/// `/charts/genre/{genre}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Param<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// One HTTP request for a guest's query handler, as the host encodes it:
///
/// ```text
/// request := partition:i32 method:str route:str path:str raw_query:str
///            nparams:u32 param{nparams} body_len:u32 body
/// param   := name:str value:str
/// str     := len:u32 bytes
/// ```
///
/// Decoded, everything borrows the encoding. The text fields must be UTF-8
/// (the decoder refuses others with reason [`NOT_UTF8`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueryRequest<'a> {
    /// The store partition the host routed the request to, or -1 for a
    /// route without a store.
    pub partition: i32,
    pub method: &'a str,
    /// The route's path pattern, as configured.
    pub route: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The query string, without '?'.
    pub raw_query: &'a str,
    pub params: Vec<Param<'a>>,
    pub body: &'a [u8],
}

/// Appends `q`'s encoding to `dst`.
pub fn append_query_request(dst: &mut Vec<u8>, q: &QueryRequest<'_>) {
    dst.extend_from_slice(&q.partition.to_le_bytes());
    for s in [q.method, q.route, q.path, q.raw_query] {
        append_str(dst, s.as_bytes());
    }
    dst.extend_from_slice(&(q.params.len() as u32).to_le_bytes());
    for p in &q.params {
        append_str(dst, p.name.as_bytes());
        append_str(dst, p.value.as_bytes());
    }
    append_str(dst, q.body);
}

fn append_str(dst: &mut Vec<u8>, b: &[u8]) {
    dst.extend_from_slice(&(b.len() as u32).to_le_bytes());
    dst.extend_from_slice(b);
}

/// Decodes a query request, borrowing `buf`.
pub fn decode_query_request(buf: &[u8]) -> Result<QueryRequest<'_>, DecodeError> {
    let mut pos = 0usize;
    let fail =
        |what: &str, at: usize, why: &str| DecodeError::new(format!("query {}", what), at, why);
    if buf.len() < 4 {
        return Err(fail("partition", 0, TRUNCATED));
    }
    let partition = u32_at(buf, 0) as i32;
    pos += 4;
    let mut text = [""; 4];
    for (i, what) in ["method", "route", "path", "raw query"].iter().enumerate() {
        let at = pos;
        let b = take_str(buf, &mut pos).map_err(|why| fail(what, at, why))?;
        text[i] = std::str::from_utf8(b).map_err(|_| fail(what, at, NOT_UTF8))?;
    }
    if buf.len() - pos < 4 {
        return Err(fail("parameter count", pos, TRUNCATED));
    }
    let n = u32_at(buf, pos) as usize;
    pos += 4;
    // Each parameter takes at least 8 bytes, which bounds n before
    // allocating for it.
    if n > (buf.len() - pos) / 8 {
        return Err(fail("parameters", pos, TRUNCATED));
    }
    let mut params = Vec::with_capacity(n);
    for _ in 0..n {
        let mut pair = [""; 2];
        for (i, what) in ["parameter name", "parameter value"].iter().enumerate() {
            let at = pos;
            let b = take_str(buf, &mut pos).map_err(|why| fail(what, at, why))?;
            pair[i] = std::str::from_utf8(b).map_err(|_| fail(what, at, NOT_UTF8))?;
        }
        params.push(Param {
            name: pair[0],
            value: pair[1],
        });
    }
    let at = pos;
    let body = take_str(buf, &mut pos).map_err(|why| fail("body", at, why))?;
    if pos != buf.len() {
        return Err(fail(
            "end",
            pos,
            &format!("{} trailing bytes", buf.len() - pos),
        ));
    }
    let [method, route, path, raw_query] = text;
    Ok(QueryRequest {
        partition,
        method,
        route,
        path,
        raw_query,
        params,
        body,
    })
}

/// Reads one `len:u32 bytes` field at `*pos` and advances past it.
fn take_str<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8], &'static str> {
    if buf.len() - *pos < 4 {
        return Err(TRUNCATED);
    }
    let n = u32_at(buf, *pos) as usize;
    *pos += 4;
    if n > buf.len() - *pos {
        return Err(TRUNCATED);
    }
    let b = &buf[*pos..*pos + n];
    *pos += n;
    Ok(b)
}

// One bounds check and one load each: indexing byte by byte would check
// every byte and keep the compiler from merging the loads.
#[inline]
fn u16_at(b: &[u8], i: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[i..i + 2]);
    u16::from_le_bytes(a)
}

#[inline]
fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

#[inline]
fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for rc in -12..=0 {
            match Code::from_result(rc) {
                None => assert_eq!(rc, 0),
                Some(c) => assert_eq!(c.raw(), rc),
            }
        }
        assert_eq!(Code::UnknownStore.to_string(), "unknown store");
        assert_eq!(Code::Other(-42).to_string(), "code -42");
    }

    #[test]
    fn truncated_batches_fail_cleanly() {
        let b = Batch {
            stream_time: 7,
            topics: vec![],
            records: vec![OwnedRecord {
                topic: "t".into(),
                key: Some(b"k".to_vec()),
                value: None,
                headers: vec![OwnedHeader {
                    key: b"h".to_vec(),
                    value: Some(b"v".to_vec()),
                }],
                ..Default::default()
            }],
        };
        let enc = encode_batch(&b);
        for n in 0..enc.len() {
            let r = BatchReader::new(&enc[..n]);
            let failed = match r {
                Err(_) => true,
                Ok(r) => r.into_iter().any(|x| x.is_err()),
            };
            assert!(
                failed,
                "a batch cut to {} of {} bytes decoded",
                n,
                enc.len()
            );
        }
        let mut long = enc.clone();
        long.push(0);
        let err = BatchReader::new(&long)
            .unwrap()
            .find_map(|r| r.err())
            .unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "streamrt: abi: decode end of batch at byte {}: 1 trailing bytes",
                enc.len()
            )
        );
    }

    #[test]
    fn truncated_query_requests_fail_cleanly() {
        let q = QueryRequest {
            partition: 2,
            method: "GET",
            route: "/a/{b}",
            path: "/a/x",
            raw_query: "n=1",
            params: vec![Param {
                name: "b",
                value: "x",
            }],
            body: b"{}",
        };
        let mut enc = Vec::new();
        append_query_request(&mut enc, &q);
        assert_eq!(decode_query_request(&enc).unwrap(), q);
        for n in 0..enc.len() {
            assert!(
                decode_query_request(&enc[..n]).is_err(),
                "a request cut to {} of {} bytes decoded",
                n,
                enc.len()
            );
        }
        enc.push(0);
        let err = decode_query_request(&enc).unwrap_err();
        assert_eq!(
            (err.what.as_str(), err.reason.as_str()),
            ("query end", "1 trailing bytes")
        );
    }

    #[test]
    fn query_text_must_be_utf8() {
        let mut enc = Vec::new();
        append_query_request(
            &mut enc,
            &QueryRequest {
                path: "/a/\u{e9}",
                ..Default::default()
            },
        );
        // "é" is c3 a9; a lone a9 is not UTF-8.
        let at = enc.iter().position(|&b| b == 0xc3).unwrap();
        enc[at] = b'x';
        let err = decode_query_request(&enc).unwrap_err();
        assert_eq!(
            (err.what.as_str(), err.reason.as_str()),
            ("query path", NOT_UTF8)
        );
    }

    #[test]
    fn huge_parameter_count_is_refused_before_allocating() {
        let mut enc = Vec::new();
        append_query_request(&mut enc, &QueryRequest::default());
        // The count follows the partition and four empty strings.
        enc[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode_query_request(&enc).unwrap_err();
        assert_eq!(err.what, "query parameters");
    }

    #[test]
    fn truncated_emits_fail_cleanly() {
        let mut hs = Vec::new();
        append_headers(&mut hs, [Header::new(b"a", b"1"), Header::null(b"n")]);
        let mut enc = Vec::new();
        append_emit(
            &mut enc,
            &Emit {
                output: 1,
                rec: 0,
                timestamp: -1,
                key: None,
                value: Some(b"v"),
                headers: &hs,
            },
        );
        assert_eq!(enc.len(), emit_size(None, Some(b"v"), &hs));
        assert_eq!(decode_emits(&enc).unwrap().len(), 1);
        for n in 1..enc.len() {
            assert!(
                decode_emits(&enc[..n]).is_err(),
                "a buffer cut to {} of {} bytes decoded",
                n,
                enc.len()
            );
        }
        enc.push(0);
        let err = decode_emits(&enc).unwrap_err();
        assert_eq!(err.what, "emit (entry 1)");
        // A header list longer than its pairs.
        let mut long = Vec::new();
        let mut list = hs.clone();
        list.push(0);
        append_emit(
            &mut long,
            &Emit {
                headers: &list,
                ..Default::default()
            },
        );
        assert_eq!(
            decode_emits(&long).unwrap_err().what,
            "emit headers (entry 0)"
        );
    }

    #[test]
    fn huge_header_count_is_refused_before_allocating() {
        let mut b = Vec::new();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(Headers::decode_list(&b).is_err());
    }

    #[test]
    fn null_field_with_a_length_is_refused() {
        let mut enc = Vec::new();
        append_batch_header(&mut enc, 1, -1, &["t"]);
        append_record(&mut enc, 0, 0, 0, 0, None, None, 0);
        // Give the null key a length of 1 (and the byte).
        let at = BATCH_HEADER_SIZE + 3 + RECORD_FIXED_SIZE;
        enc[at] = 1;
        enc.insert(at + 4, b'x');
        let err = BatchReader::new(&enc).unwrap().next().unwrap().unwrap_err();
        assert_eq!(err.reason, "null field with length 1");
    }
}
