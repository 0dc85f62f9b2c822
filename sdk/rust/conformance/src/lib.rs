//! The ABI conformance guest on the Rust SDK: an interpreter for the command
//! scripts of `abi/testdata/conformance/conformance.txt`, whose header
//! specifies the commands, run on records and on queries. Its Go twin is
//! `runtime/internal/wasm/testdata/guests/conformance`; the two must behave
//! the same byte for byte, which the host's conformance tests check by
//! running the transcript against both.
//!
//! The crate is a `cdylib` (the guest) and an `rlib`, so that
//! `tests/transcript.rs` runs the same interpreter natively on
//! `streamrt::testing::FakeHost`.

use streamrt::{
    abi, sys, EmitOptions, Error, Header, Level, Query, Record, Response, Result, Store,
};

/// The stage's handler: runs the record's script.
pub fn handle(r: &Record) -> Result<()> {
    let script = std::str::from_utf8(r.value.unwrap_or(&[]))
        .map_err(|_| Error::new("script is not UTF-8"))?;
    Session::new(Some(r), None).script(script)
}

/// The stage's query handler: runs the script on the request body's first
/// line and answers with the results.
pub fn query(q: &Query<'_>) -> Result<Response> {
    let line = q.body.split(|&c| c == b'\n').next().unwrap_or(&[]);
    let script = std::str::from_utf8(line).map_err(|_| Error::new("script is not UTF-8"))?;
    let mut s = Session::new(None, Some(q));
    s.script(script)?;
    Ok(Response::new(s.status, s.ctype, s.body))
}

streamrt::export_stage!(record: handle, query: query);

/// One run of a script: for a record, whose results are emitted, or for a
/// query, whose results make up the answer's body.
struct Session<'r, 'q> {
    r: Option<&'r Record<'r>>,
    q: Option<&'q Query<'q>>,
    // A query's answer, as the script builds it.
    status: u16,
    ctype: String,
    body: Vec<u8>,
    /// raw-respond answered the query: results go to the log.
    answered: bool,
}

impl<'r, 'q> Session<'r, 'q> {
    fn new(r: Option<&'r Record<'r>>, q: Option<&'q Query<'q>>) -> Self {
        Session {
            r,
            q,
            status: 200,
            ctype: "text/plain".to_string(),
            body: Vec::new(),
            answered: false,
        }
    }

    fn script(&mut self, text: &str) -> Result<()> {
        for cmd in text.split(';') {
            let cmd = cmd.trim();
            if cmd.is_empty() {
                continue;
            }
            match cmd.strip_prefix('?') {
                Some(inner) => {
                    let inner = inner.trim();
                    if let Err(e) = self.run(inner) {
                        self.out(inner, Some(format!("error: {}", e).as_bytes()))?;
                    }
                }
                None => self.run(cmd)?,
            }
        }
        Ok(())
    }

    /// The record, for the commands that need one.
    fn record(&self, cmd: &str) -> Result<&'r Record<'r>> {
        self.r
            .ok_or_else(|| Error::new(format!("{}: no record in a query", cmd)))
    }

    /// The record's index (-1, no record, in a query).
    fn index(&self) -> i32 {
        self.r.map_or(-1, |r| r.index() as i32)
    }

    /// A REC argument: "cur" is the record's own index.
    fn record_index(&self, s: &str) -> Result<i32> {
        if s == "cur" {
            return Ok(self.index());
        }
        int(s)
    }

    /// Gives a command's result: for a record, emitted to output "out",
    /// keyed by the command; in a query, the line "CMD: VALUE" ("CMD
    /// (null)"), added to the answer's body, or logged at info once
    /// raw-respond answered.
    fn out(&mut self, cmd: &str, value: Option<&[u8]>) -> Result<()> {
        if self.q.is_none() {
            return streamrt::emit("out", Some(cmd.as_bytes()), value);
        }
        let mut line = cmd.as_bytes().to_vec();
        match value {
            None => line.extend_from_slice(b" (null)"),
            Some(v) => {
                line.extend_from_slice(b": ");
                line.extend_from_slice(v);
            }
        }
        if self.answered {
            streamrt::log(Level::Info, &String::from_utf8_lossy(&line));
        } else {
            self.body.extend_from_slice(&line);
            self.body.push(b'\n');
        }
        Ok(())
    }

    /// Gives a host function's result: "ok" for a handle, else the code.
    fn out_code(&mut self, cmd: &str, rc: i32) -> Result<()> {
        let text = if rc >= 0 && (cmd.starts_with("raw-store") || cmd.starts_with("raw-output")) {
            "ok".to_string()
        } else {
            rc.to_string()
        };
        self.out(cmd, Some(text.as_bytes()))
    }

    fn run(&mut self, cmd: &str) -> Result<()> {
        let args: Vec<&str> = cmd.split_whitespace().collect();
        let want = |n: usize| -> Result<()> {
            if args.len() != n + 1 {
                return Err(Error::new(format!(
                    "{}: want {} arguments, got {}",
                    args[0],
                    n,
                    args.len() - 1
                )));
            }
            Ok(())
        };
        if args[0].starts_with("raw-") {
            // A raw command acts on the host directly: the records the SDK
            // holds in its emit buffer go first, so that the host sees the
            // script's effects in the order it made them.
            streamrt::flush()?;
        }
        match args[0] {
            "put" => {
                want(3)?;
                Store::named(args[1]).put(&bytes(args[2])?, &bytes(args[3])?)
            }
            "del" => {
                want(2)?;
                Store::named(args[1]).delete(&bytes(args[2])?)
            }
            "get" => {
                want(2)?;
                let v = Store::named(args[1]).get(&bytes(args[2])?)?;
                self.out(cmd, v.as_deref())
            }
            "getsum" => {
                want(2)?;
                let mut v = Vec::new();
                let text = if Store::named(args[1]).get_into(&bytes(args[2])?, &mut v)? {
                    format!("len={} fnv={:08x}", v.len(), fnv1a(&v))
                } else {
                    "absent".to_string()
                };
                self.out(cmd, Some(text.as_bytes()))
            }
            "range" => {
                want(3)?;
                let s = Store::named(args[1]);
                let (start, end) = (arg(args[2])?, arg(args[3])?);
                let it = s.range(start.as_deref(), end.as_deref())?;
                self.out(cmd, Some(&list(it)?))
            }
            "prefix" => {
                want(2)?;
                let s = Store::named(args[1]);
                let it = s.prefix(&bytes(args[2])?)?;
                self.out(cmd, Some(&list(it)?))
            }
            "scan" => {
                want(3)?;
                let s = Store::named(args[1]);
                let (start, end) = (arg(args[2])?, arg(args[3])?);
                let mut it = s.range(start.as_deref(), end.as_deref())?;
                let (mut n, mut size) = (0, 0);
                let (mut first, mut last) = (Vec::new(), Vec::new());
                while let Some((k, v)) = it.next_entry()? {
                    if n == 0 {
                        first = k.to_vec();
                    }
                    last.clear();
                    last.extend_from_slice(k);
                    n += 1;
                    size += k.len() + v.len();
                }
                let mut text = format!("n={} bytes={} first=", n, size).into_bytes();
                text.extend_from_slice(&first);
                text.extend_from_slice(b" last=");
                text.extend_from_slice(&last);
                self.out(cmd, Some(&text))
            }
            "fill" => {
                want(4)?;
                let s = Store::named(args[1]);
                let prefix = bytes(args[2])?;
                let (n, size) = (number(args[3])?, number(args[4])?);
                for i in 0..n {
                    let mut k = prefix.clone();
                    k.extend_from_slice(format!("{:04}", i).as_bytes());
                    let v: Vec<u8> = (0..size).map(|j| b'a' + ((i + j) % 26) as u8).collect();
                    s.put(&k, &v)?;
                }
                Ok(())
            }
            "rangeput" => {
                want(3)?;
                let s = Store::named(args[1]);
                let it = s.range(None, None)?;
                s.put(&bytes(args[2])?, &bytes(args[3])?)?;
                self.out(cmd, Some(&list(it)?))
            }
            "emit" => {
                if args.len() < 4 {
                    return Err(Error::new(format!(
                        "emit: want at least 3 arguments, got {}",
                        args.len() - 1
                    )));
                }
                let (key, value) = (arg(args[2])?, arg(args[3])?);
                let mut names = Vec::new();
                let mut values = Vec::new();
                let mut opts = EmitOptions::new();
                for a in &args[4..] {
                    if let Some(h) = a.strip_prefix("h:") {
                        let (name, v) = h
                            .split_once('=')
                            .ok_or_else(|| Error::new(format!("emit: bad header {}", a)))?;
                        names.push(bytes(name)?);
                        values.push(arg(v)?);
                    } else if let Some(ts) = a.strip_prefix("ts=") {
                        opts = opts.timestamp(
                            ts.parse()
                                .map_err(|_| Error::new(format!("emit: bad timestamp {}", a)))?,
                        );
                    } else {
                        return Err(Error::new(format!("emit: bad argument {}", a)));
                    }
                }
                let hs: Vec<Header> = names
                    .iter()
                    .zip(&values)
                    .map(|(k, v)| Header {
                        key: k,
                        value: v.as_deref(),
                    })
                    .collect();
                if !hs.is_empty() {
                    opts = opts.headers(&hs);
                }
                streamrt::emit_with(args[1], key.as_deref(), value.as_deref(), opts)
            }
            "emitn" => {
                want(4)?;
                let prefix = bytes(args[2])?;
                let (n, size) = (number(args[3])?, number(args[4])?);
                for i in 0..n {
                    let mut k = prefix.clone();
                    k.extend_from_slice(format!("{:04}", i).as_bytes());
                    let v = vec![b'a' + (i % 26) as u8; size];
                    streamrt::emit(args[1], Some(&k), Some(&v))?;
                }
                Ok(())
            }
            "echo" => {
                want(0)?;
                let r = self.record(cmd)?;
                streamrt::emit_with(
                    "out",
                    r.key,
                    r.value,
                    EmitOptions::new().record_headers(r.headers()),
                )
            }
            "meta" => {
                want(0)?;
                let r = self.record(cmd)?;
                let text = format!(
                    "topic={} partition={} offset={} ts={} headers={}",
                    r.topic,
                    r.partition,
                    r.offset,
                    r.timestamp,
                    r.headers().len()
                );
                self.out(cmd, Some(text.as_bytes()))
            }
            "time" => {
                want(0)?;
                self.record(cmd)?;
                self.out(cmd, Some(streamrt::stream_time().to_string().as_bytes()))
            }
            "log" => {
                if args.len() < 2 {
                    return Err(Error::new("log: want a level"));
                }
                let level: i32 = args[1]
                    .parse()
                    .map_err(|_| Error::new(format!("log: bad level {}", args[1])))?;
                let msg = text(&args[2..])?;
                match level {
                    0 => streamrt::log(Level::Debug, &msg),
                    1 => streamrt::log(Level::Info, &msg),
                    2 => streamrt::log(Level::Warn, &msg),
                    3 => streamrt::log(Level::Error, &msg),
                    other => unsafe { sys::log(other, msg.as_ptr(), msg.len() as i32) },
                }
                Ok(())
            }
            "fail" => Err(Error::new(text(&args[1..])?)),
            "panic" => panic!("{}", text(&args[1..])?),
            "raw-store" => {
                want(1)?;
                self.out_code(cmd, store_handle(args[1])?)
            }
            "raw-output" => {
                want(1)?;
                self.out_code(cmd, output_handle(args[1])?)
            }
            "raw-get" => {
                want(3)?;
                let h = store_handle(args[1])?;
                let key = arg(args[2])?;
                let mut buf = vec![b'*'; number(args[3])?];
                let (kp, kl) = raw(key.as_deref());
                let rc = unsafe { sys::store_get(h, kp, kl, buf.as_mut_ptr(), buf.len() as i32) };
                let mut text = format!("rc={} buf=", rc).into_bytes();
                text.extend_from_slice(&buf);
                self.out(cmd, Some(&text))
            }
            "raw-range" => {
                want(4)?;
                let h = store_handle(args[1])?;
                let (start, end) = (arg(args[2])?, arg(args[3])?);
                let (sp, sl) = raw(start.as_deref());
                let (ep, el) = raw(end.as_deref());
                let it = unsafe { sys::store_range(h, sp, sl, ep, el) };
                if it < 0 {
                    return self.out(cmd, Some(format!("range={}", it).as_bytes()));
                }
                let cap = number(args[4])?;
                let mut buf = vec![b'*'; cap];
                let mut rcs = Vec::new();
                loop {
                    let rc = unsafe { sys::range_next(it, buf.as_mut_ptr(), cap as i32) };
                    rcs.push(rc.to_string());
                    if rc <= 0 || rc as usize > cap || rcs.len() >= 10_000 {
                        break;
                    }
                }
                let close = unsafe { sys::range_close(it) };
                let again = unsafe { sys::range_close(it) };
                self.out(
                    cmd,
                    Some(
                        format!("next={} close={} again={}", rcs.join(","), close, again)
                            .as_bytes(),
                    ),
                )
            }
            "raw-next" => {
                want(1)?;
                let mut buf = [0u8; 16];
                let rc =
                    unsafe { sys::range_next(int(args[1])?, buf.as_mut_ptr(), buf.len() as i32) };
                self.out_code(cmd, rc)
            }
            "raw-close" => {
                want(1)?;
                self.out_code(cmd, unsafe { sys::range_close(int(args[1])?) })
            }
            "raw-put" => {
                want(3)?;
                let h = store_handle(args[1])?;
                let (key, value) = (arg(args[2])?, arg(args[3])?);
                let (kp, kl) = raw(key.as_deref());
                let (vp, vl) = raw(value.as_deref());
                self.out_code(cmd, unsafe {
                    sys::store_put(h, self.index(), kp, kl, vp, vl)
                })
            }
            "raw-del" => {
                want(2)?;
                let h = store_handle(args[1])?;
                let key = arg(args[2])?;
                let (kp, kl) = raw(key.as_deref());
                self.out_code(cmd, unsafe { sys::store_delete(h, self.index(), kp, kl) })
            }
            "raw-emit" => {
                want(2)?;
                let h = output_handle(args[1])?;
                let rec = self.record_index(args[2])?;
                self.out_code(cmd, raw_emit(h, rec, &[]))
            }
            "raw-emit-hdr" => {
                want(2)?;
                let h = output_handle(args[1])?;
                self.out_code(cmd, raw_emit(h, self.index(), &unhex(args[2])?))
            }
            "raw-emits" => {
                let buf = self.emit_buffer(&args[1..])?;
                self.out_code(cmd, unsafe {
                    sys::emit_batch(buf.as_ptr(), buf.len() as i32)
                })
            }
            "raw-respond" => {
                want(3)?;
                let status = int(args[1])?;
                let (ctype, body) = (arg(args[2])?, arg(args[3])?);
                let (cp, cl) = raw(ctype.as_deref());
                let (bp, bl) = raw(body.as_deref());
                let rc = unsafe { sys::respond(status, cp, cl, bp, bl) };
                let res = self.out_code(cmd, rc);
                if rc == 0 && self.q.is_some() {
                    self.answered = true;
                }
                res
            }
            "raw-error" => {
                if args.len() < 2 {
                    return Err(Error::new("raw-error: want a record"));
                }
                let rec = self.record_index(args[1])?;
                let msg = text(&args[2..])?;
                self.out_code(cmd, unsafe {
                    sys::record_error(rec, msg.as_ptr(), msg.len() as i32)
                })
            }
            _ if self.q.is_some() => self.run_query(cmd, &args),
            other => Err(Error::new(format!("unknown command {}", other))),
        }
    }

    /// Builds raw-emits' buffer from its SPEC arguments: O/REC or O/REC/HEX
    /// an entry (key "k", value "v", the inherited timestamp, the header
    /// list HEX or none), +HEX raw bytes, -N the last N bytes cut off.
    fn emit_buffer(&self, specs: &[&str]) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        for spec in specs {
            if let Some(h) = spec.strip_prefix('+') {
                buf.extend_from_slice(&unhex(h)?);
            } else if let Some(n) = spec.strip_prefix('-') {
                let n = number(n)?;
                if n > buf.len() {
                    return Err(Error::new(format!(
                        "raw-emits: cannot cut {} of {} bytes",
                        n,
                        buf.len()
                    )));
                }
                buf.truncate(buf.len() - n);
            } else {
                let parts: Vec<&str> = spec.split('/').collect();
                if parts.len() < 2 || parts.len() > 3 {
                    return Err(Error::new(format!("raw-emits: bad entry {}", spec)));
                }
                let hdr = match parts.get(2) {
                    Some(h) => unhex(h)?,
                    None => Vec::new(),
                };
                abi::append_emit(
                    &mut buf,
                    &abi::Emit {
                        output: output_handle(parts[0])?,
                        rec: self.record_index(parts[1])?,
                        timestamp: abi::INHERIT_TIMESTAMP,
                        key: Some(b"k"),
                        value: Some(b"v"),
                        headers: &hdr,
                    },
                );
            }
        }
        Ok(buf)
    }

    /// Runs the commands only a query has.
    fn run_query(&mut self, cmd: &str, args: &[&str]) -> Result<()> {
        let want = |n: usize| -> Result<()> {
            if args.len() != n + 1 {
                return Err(Error::new(format!(
                    "{}: want {} arguments, got {}",
                    args[0],
                    n,
                    args.len() - 1
                )));
            }
            Ok(())
        };
        let q = match self.q {
            Some(q) => q,
            None => return Err(Error::new(format!("unknown command {}", args[0]))),
        };
        match args[0] {
            "status" => {
                want(1)?;
                self.status = args[1]
                    .parse()
                    .map_err(|_| Error::new(format!("bad number {}", args[1])))?;
                Ok(())
            }
            "ctype" => {
                want(1)?;
                self.ctype = String::from_utf8(bytes(args[1])?)
                    .map_err(|_| Error::new("content type is not UTF-8"))?;
                Ok(())
            }
            "request" => {
                want(0)?;
                let text = format!(
                    "partition={} method={} route={} path={}",
                    q.partition, q.method, q.route, q.path
                );
                self.out(cmd, Some(text.as_bytes()))
            }
            "body" => {
                want(0)?;
                self.out(cmd, Some(q.body))
            }
            "param" => {
                want(1)?;
                self.out(cmd, Some(q.param(args[1]).unwrap_or("").as_bytes()))
            }
            "query" => {
                want(1)?;
                let values: Vec<String> = q
                    .query_pairs()
                    .into_iter()
                    .filter(|(n, _)| n == args[1])
                    .map(|(_, v)| v)
                    .collect();
                if values.is_empty() {
                    return self.out(cmd, Some(b"absent"));
                }
                self.out(cmd, Some(values.join(",").as_bytes()))
            }
            other => Err(Error::new(format!("unknown command {}", other))),
        }
    }
}

/// Lists a range as "k=v,k=v".
fn list(mut it: streamrt::Range<'_>) -> Result<Vec<u8>> {
    let mut text = Vec::new();
    while let Some((k, v)) = it.next_entry()? {
        if !text.is_empty() {
            text.push(b',');
        }
        text.extend_from_slice(k);
        text.push(b'=');
        text.extend_from_slice(v);
    }
    Ok(text)
}

fn raw_emit(h: i32, rec: i32, hdr: &[u8]) -> i32 {
    let (hp, hl) = (hdr.as_ptr(), hdr.len() as i32);
    unsafe { sys::emit(h, rec, b"k".as_ptr(), 1, b"v".as_ptr(), 1, hp, hl, -1) }
}

/// (ptr, len) for a raw call, with len -1 for null.
fn raw(b: Option<&[u8]>) -> (*const u8, i32) {
    match b {
        Some(b) => (b.as_ptr(), b.len() as i32),
        None => (std::ptr::null(), -1),
    }
}

fn store_handle(name: &str) -> Result<i32> {
    if let Some(n) = name.strip_prefix('#') {
        return int(n);
    }
    let name = bytes(name)?;
    Ok(unsafe { sys::store_open(name.as_ptr(), name.len() as i32) })
}

fn output_handle(name: &str) -> Result<i32> {
    if let Some(n) = name.strip_prefix('#') {
        return int(n);
    }
    let name = bytes(name)?;
    Ok(unsafe { sys::output_open(name.as_ptr(), name.len() as i32) })
}

/// An argument: "~" is null, "-" is empty, anything else is percent-decoded.
fn arg(s: &str) -> Result<Option<Vec<u8>>> {
    match s {
        "~" => Ok(None),
        "-" => Ok(Some(Vec::new())),
        _ => unescape(s).map(Some),
    }
}

/// An argument where null is not possible: "~" is empty too.
fn bytes(s: &str) -> Result<Vec<u8>> {
    Ok(arg(s)?.unwrap_or_default())
}

/// The rest of a command as one percent-decoded text.
fn text(args: &[&str]) -> Result<String> {
    let b = unescape(&args.join(" "))?;
    String::from_utf8(b).map_err(|_| Error::new("message is not UTF-8"))
}

fn unescape(s: &str) -> Result<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(v) => out.push(v),
                None => return Err(Error::new(format!("bad escape in {}", s))),
            }
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn unhex(s: &str) -> Result<Vec<u8>> {
    if s.len() % 2 != 0 {
        return Err(Error::new(format!("bad hex {}", s)));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| Error::new(format!("bad hex {}", s)))
        })
        .collect()
}

fn number(s: &str) -> Result<usize> {
    s.parse()
        .map_err(|_| Error::new(format!("bad number {}", s)))
}

fn int(s: &str) -> Result<i32> {
    s.parse()
        .map_err(|_| Error::new(format!("bad number {}", s)))
}

fn fnv1a(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &c| {
        (h ^ u32::from(c)).wrapping_mul(0x0100_0193)
    })
}
