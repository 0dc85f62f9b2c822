//! The golden vectors of abi/testdata/*.vec, shared with the host and the Go
//! SDK: every one decoded and re-encoded by this crate's abi module, and run
//! through the SDK's own paths (the batch decoder behind both handler kinds,
//! emit's header encoding, the range iterator, the query handler).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use streamrt::abi::{
    self, Batch, BatchReader, Header, Headers, OwnedHeader, OwnedRecord, Param, QueryRequest,
};
use streamrt::testing::{self, Call, FakeHost, Host};
use streamrt::{EmitOptions, Query, Record, Response, Store};

struct Vector {
    file: String,
    line: usize,
    name: String,
    kind: String,
    batch: Batch,
    headers: Vec<OwnedHeader>,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    query: OwnedQuery,
    emits: Vec<OwnedEmit>,
    encoded: Vec<u8>,
}

/// An emits vector's entry; `list` says whether it carries a header list
/// (its headers, or an empty one with headers=empty) rather than none.
#[derive(Debug, Clone, Default)]
struct OwnedEmit {
    output: i32,
    rec: i32,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<OwnedHeader>,
    list: bool,
}

impl OwnedEmit {
    fn header_list(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.list {
            abi::append_headers(&mut out, self.headers.iter().map(borrow_header));
        }
        out
    }
}

fn borrow_header(h: &OwnedHeader) -> Header<'_> {
    Header {
        key: &h.key,
        value: h.value.as_deref(),
    }
}

/// A query vector's request; [`OwnedQuery::request`] borrows it as the abi
/// module's type.
#[derive(Default)]
struct OwnedQuery {
    partition: i32,
    method: String,
    route: String,
    path: String,
    raw_query: String,
    params: Vec<(String, String)>,
    body: Vec<u8>,
}

impl OwnedQuery {
    fn request(&self) -> QueryRequest<'_> {
        QueryRequest {
            partition: self.partition,
            method: &self.method,
            route: &self.route,
            path: &self.path,
            raw_query: &self.raw_query,
            params: self
                .params
                .iter()
                .map(|(n, v)| Param { name: n, value: v })
                .collect(),
            body: &self.body,
        }
    }
}

impl Vector {
    fn at(&self) -> String {
        format!("{}:{} ({})", self.file, self.line, self.name)
    }
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../abi/testdata")
}

/// Reads every *.vec file, as abi/abitest does.
fn load() -> Vec<Vector> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata())
        .expect("read abi/testdata")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |e| e == "vec"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.vec files in {}",
        testdata().display()
    );
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        out.extend(
            parse(&text, &f.file_name().unwrap().to_string_lossy())
                .unwrap_or_else(|e| panic!("{}", e)),
        );
    }
    out
}

fn parse(text: &str, file: &str) -> Result<Vec<Vector>, String> {
    let mut out = Vec::new();
    let mut cur: Option<Vector> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let text = raw.split('#').next().unwrap();
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let fail = |m: String| format!("{}:{}: {}", file, line, m);
        if fields[0] == "vector" {
            if cur.is_some() {
                return Err(fail("vector not ended".into()));
            }
            cur = Some(Vector {
                file: file.to_string(),
                line,
                name: fields[1].to_string(),
                kind: String::new(),
                batch: Batch::default(),
                headers: Vec::new(),
                entries: Vec::new(),
                query: OwnedQuery::default(),
                emits: Vec::new(),
                encoded: Vec::new(),
            });
            continue;
        }
        let v = cur
            .as_mut()
            .ok_or_else(|| fail(format!("{} outside a vector", fields[0])))?;
        let kv = |fs: &[&str]| -> Result<std::collections::HashMap<String, String>, String> {
            fs.iter()
                .map(|f| {
                    f.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| format!("want key=value, got {}", f))
                })
                .collect()
        };
        match fields[0] {
            "kind" => v.kind = fields[1].to_string(),
            "stream_time" => {
                v.batch.stream_time = fields[1].parse().map_err(|_| fail("stream_time".into()))?
            }
            "topics" => v.batch.topics = fields[1..].iter().map(|s| s.to_string()).collect(),
            "record" => {
                let m = kv(&fields[1..]).map_err(fail)?;
                let ti: usize = m["topic"].parse().map_err(|_| fail("topic".into()))?;
                v.batch.records.push(OwnedRecord {
                    topic: v
                        .batch
                        .topics
                        .get(ti)
                        .ok_or_else(|| fail("topic index".into()))?
                        .clone(),
                    partition: m["partition"]
                        .parse()
                        .map_err(|_| fail("partition".into()))?,
                    offset: m["offset"].parse().map_err(|_| fail("offset".into()))?,
                    timestamp: m["timestamp"]
                        .parse()
                        .map_err(|_| fail("timestamp".into()))?,
                    key: bytes(&m["key"], true).map_err(fail)?,
                    value: bytes(&m["value"], true).map_err(fail)?,
                    headers: Vec::new(),
                });
            }
            "header" => {
                let m = kv(&fields[1..]).map_err(fail)?;
                let h = OwnedHeader {
                    key: bytes(&m["key"], false).map_err(fail)?.unwrap(),
                    value: bytes(&m["value"], true).map_err(fail)?,
                };
                if v.kind == "headers" {
                    v.headers.push(h);
                } else if v.kind == "emits" {
                    let e = v
                        .emits
                        .last_mut()
                        .ok_or_else(|| fail("header before any emit".into()))?;
                    e.headers.push(h);
                    e.list = true;
                } else {
                    v.batch
                        .records
                        .last_mut()
                        .ok_or_else(|| fail("header before any record".into()))?
                        .headers
                        .push(h);
                }
            }
            "partition" => {
                v.query.partition = fields[1].parse().map_err(|_| fail("partition".into()))?
            }
            // The rest of the line, which may be empty.
            "method" | "route" | "path" | "raw_query" => {
                let text = fields[1..].join(" ");
                match fields[0] {
                    "method" => v.query.method = text,
                    "route" => v.query.route = text,
                    "path" => v.query.path = text,
                    _ => v.query.raw_query = text,
                }
            }
            "param" => {
                let m = kv(&fields[1..]).map_err(fail)?;
                let text = |k: &str| -> Result<String, String> {
                    let b = bytes(m.get(k).map_or("", |s| s.as_str()), false)?.unwrap();
                    String::from_utf8(b).map_err(|_| format!("param {} is not UTF-8", k))
                };
                v.query
                    .params
                    .push((text("name").map_err(fail)?, text("value").map_err(fail)?));
            }
            "body" => v.query.body = bytes(&fields[1..].concat(), false).map_err(fail)?.unwrap(),
            "entry" => {
                let m = kv(&fields[1..]).map_err(fail)?;
                v.entries.push((
                    bytes(&m["key"], false).map_err(fail)?.unwrap(),
                    bytes(&m["value"], false).map_err(fail)?.unwrap(),
                ));
            }
            "emit" => {
                let m = kv(&fields[1..]).map_err(fail)?;
                let num = |k: &str| -> Result<i64, String> {
                    m.get(k)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| fail(format!("emit {}", k)))
                };
                v.emits.push(OwnedEmit {
                    output: num("output")? as i32,
                    rec: num("rec")? as i32,
                    ts: num("ts")?,
                    key: bytes(&m["key"], true).map_err(fail)?,
                    value: bytes(&m["value"], true).map_err(fail)?,
                    headers: Vec::new(),
                    list: m.get("headers").map(|s| s.as_str()) == Some("empty"),
                });
            }
            "encoded" => {
                v.encoded = bytes(fields.get(1).copied().unwrap_or(""), false)
                    .map_err(fail)?
                    .unwrap()
            }
            "end" => {
                if !matches!(
                    v.kind.as_str(),
                    "batch" | "headers" | "entries" | "query" | "emits"
                ) {
                    return Err(fail(format!("unknown kind {}", v.kind)));
                }
                out.push(cur.take().unwrap());
            }
            other => return Err(fail(format!("unknown directive {}", other))),
        }
    }
    if cur.is_some() {
        return Err(format!("{}: vector not ended", file));
    }
    Ok(out)
}

fn bytes(s: &str, nullable: bool) -> Result<Option<Vec<u8>>, String> {
    if s == "null" {
        return if nullable {
            Ok(None)
        } else {
            Err("null not allowed here".into())
        };
    }
    if s.len() % 2 != 0 {
        return Err(format!("bad hex {}", s));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| format!("bad hex {}", s)))
        .collect::<Result<Vec<u8>, String>>()
        .map(Some)
}

fn vectors(kind: &str) -> Vec<Vector> {
    let vs: Vec<Vector> = load().into_iter().filter(|v| v.kind == kind).collect();
    assert!(!vs.is_empty(), "no {} vectors", kind);
    vs
}

fn owned(r: &Record) -> OwnedRecord {
    OwnedRecord {
        topic: r.topic.to_string(),
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key.map(|k| k.to_vec()),
        value: r.value.map(|v| v.to_vec()),
        headers: r.headers().map(OwnedHeader::from).collect(),
    }
}

#[test]
fn every_vector_file_parses() {
    let vs = load();
    assert!(vs.len() >= 12, "only {} vectors", vs.len());
}

#[test]
fn batches_decode_and_reencode() {
    for v in vectors("batch") {
        assert_eq!(abi::encode_batch(&v.batch), v.encoded, "{}: encode", v.at());
        let r = BatchReader::new(&v.encoded).unwrap_or_else(|e| panic!("{}: {}", v.at(), e));
        assert_eq!(r.stream_time(), v.batch.stream_time, "{}", v.at());
        assert_eq!(
            r.topics().to_vec(),
            v.batch
                .topics
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>(),
            "{}",
            v.at()
        );
        assert_eq!(r.len(), v.batch.records.len(), "{}", v.at());
        let got: Vec<OwnedRecord> = r
            .map(|r| OwnedRecord::from(r.unwrap_or_else(|e| panic!("{}: {}", v.at(), e))))
            .collect();
        assert_eq!(got, v.batch.records, "{}: decode", v.at());
        // Re-encoding the decoded form gives the same bytes.
        let again = Batch {
            stream_time: v.batch.stream_time,
            topics: v.batch.topics.clone(),
            records: got,
        };
        assert_eq!(
            abi::encode_batch(&again),
            v.encoded,
            "{}: re-encode",
            v.at()
        );
    }
}

#[test]
fn batches_through_a_record_handler() {
    for v in vectors("batch") {
        let host = FakeHost::new();
        let mut got = Vec::new();
        let call = host.call_records(&v.encoded, |r: &Record| -> streamrt::Result<()> {
            assert_eq!(r.index(), got.len(), "{}", v.at());
            assert_eq!(streamrt::stream_time(), v.batch.stream_time, "{}", v.at());
            got.push(owned(r));
            Ok(())
        });
        assert_eq!(
            call,
            Call::Returned(0),
            "{}: errors {:?}",
            v.at(),
            host.record_errors()
        );
        assert_eq!(got, v.batch.records, "{}", v.at());
    }
}

#[test]
fn batches_through_a_batch_handler() {
    for v in vectors("batch") {
        let host = FakeHost::new();
        let mut got = Vec::new();
        let mut calls = 0;
        let call = host.call_batch(&v.encoded, |b: &streamrt::Batch| -> streamrt::Result<()> {
            calls += 1;
            assert_eq!(b.stream_time(), v.batch.stream_time);
            for i in 0..b.len() {
                assert_eq!(b.record(i).index(), i);
                got.push(owned(b.record(i)));
            }
            Ok(())
        });
        assert_eq!(
            call,
            Call::Returned(0),
            "{}: errors {:?}",
            v.at(),
            host.record_errors()
        );
        assert_eq!(calls, 1);
        assert_eq!(got, v.batch.records, "{}", v.at());
    }
}

/// A host whose emit keeps the header list it is given, byte for byte.
#[derive(Default)]
struct HeaderSpy {
    lists: Vec<Vec<u8>>,
    canned: Vec<Vec<u8>>,
}

impl Host for HeaderSpy {
    fn store_open(&mut self, _: &[u8]) -> i32 {
        0
    }
    fn store_get(&mut self, _: i32, _: Option<&[u8]>, _: &mut [u8]) -> i32 {
        -1
    }
    fn store_put(&mut self, _: i32, _: i32, _: Option<&[u8]>, _: Option<&[u8]>) -> i32 {
        0
    }
    fn store_delete(&mut self, _: i32, _: i32, _: Option<&[u8]>) -> i32 {
        0
    }
    fn store_range(&mut self, _: i32, _: Option<&[u8]>, _: Option<&[u8]>) -> i32 {
        7
    }
    /// Hands out the canned chunks one per call, as a host that writes
    /// whole entries would, asking for more room when one does not fit.
    fn range_next(&mut self, _: i32, buf: &mut [u8]) -> i32 {
        match self.canned.first() {
            None => 0,
            Some(c) if c.len() > buf.len() => c.len() as i32,
            Some(_) => {
                let c = self.canned.remove(0);
                buf[..c.len()].copy_from_slice(&c);
                c.len() as i32
            }
        }
    }
    fn range_close(&mut self, _: i32) -> i32 {
        0
    }
    fn output_open(&mut self, _: &[u8]) -> i32 {
        0
    }
    fn emit(
        &mut self,
        _: i32,
        _: i32,
        _: Option<&[u8]>,
        _: Option<&[u8]>,
        headers: &[u8],
        _: i64,
    ) -> i32 {
        self.lists.push(headers.to_vec());
        0
    }
    fn log(&mut self, _: i32, _: &[u8]) {}
    fn record_error(&mut self, rec: i32, msg: &[u8]) -> i32 {
        panic!("record {} failed: {}", rec, String::from_utf8_lossy(msg));
    }
}

fn one_record() -> Vec<u8> {
    abi::encode_batch(&Batch {
        stream_time: -1,
        topics: vec![],
        records: vec![OwnedRecord {
            topic: "in".into(),
            ..Default::default()
        }],
    })
}

#[test]
fn headers_encode_and_decode() {
    for v in vectors("headers") {
        let mut enc = Vec::new();
        abi::append_headers(
            &mut enc,
            v.headers.iter().map(|h| Header {
                key: &h.key,
                value: h.value.as_deref(),
            }),
        );
        assert_eq!(enc, v.encoded, "{}: encode", v.at());
        let got: Vec<OwnedHeader> = Headers::decode_list(&v.encoded)
            .unwrap_or_else(|e| panic!("{}: {}", v.at(), e))
            .map(OwnedHeader::from)
            .collect();
        assert_eq!(got, v.headers, "{}: decode", v.at());

        // Emit's encoding, from a list and from an input record's headers.
        let spy = Rc::new(RefCell::new(HeaderSpy::default()));
        let hs: Vec<Header> = v
            .headers
            .iter()
            .map(|h| Header {
                key: &h.key,
                value: h.value.as_deref(),
            })
            .collect();
        let call = testing::call_records(
            &spy,
            testing::new_generation(),
            &one_record(),
            &mut |r: &Record| -> streamrt::Result<()> {
                streamrt::emit_with("out", r.key, r.value, EmitOptions::new().headers(&hs))
            },
        );
        assert_eq!(call, Call::Returned(0));
        let batch = Batch {
            stream_time: -1,
            topics: vec![],
            records: vec![OwnedRecord {
                topic: "in".into(),
                headers: v.headers.clone(),
                ..Default::default()
            }],
        };
        let call = testing::call_records(
            &spy,
            testing::new_generation(),
            &abi::encode_batch(&batch),
            &mut |r: &Record| -> streamrt::Result<()> {
                streamrt::emit_with(
                    "out",
                    r.key,
                    r.value,
                    EmitOptions::new().record_headers(r.headers()),
                )
            },
        );
        assert_eq!(call, Call::Returned(0));
        let spied = spy.borrow();
        let lists = &spied.lists;
        assert_eq!(lists[0], v.encoded, "{}: emit with a header list", v.at());
        // An input record without headers is passed on with none (length 0).
        let want = if v.headers.is_empty() {
            Vec::new()
        } else {
            v.encoded.clone()
        };
        assert_eq!(lists[1], want, "{}: emit with a record's headers", v.at());
    }
}

#[test]
fn entries_decode_and_iterate() {
    for v in vectors("entries") {
        let mut enc = Vec::new();
        let mut rest: &[u8] = &v.encoded;
        for (k, val) in &v.entries {
            abi::append_entry(&mut enc, k, val);
            let (gk, gv, r) = abi::next_entry(rest).unwrap_or_else(|e| panic!("{}: {}", v.at(), e));
            assert_eq!((gk, gv), (k.as_slice(), val.as_slice()), "{}", v.at());
            rest = r;
        }
        assert!(rest.is_empty(), "{}: {} bytes left", v.at(), rest.len());
        assert_eq!(enc, v.encoded, "{}: encode", v.at());

        // The iterator decodes what range_next writes, also when it arrives
        // in chunks bigger than its buffer (one of 5000 bytes here).
        for pad in [0usize, 5000] {
            let mut canned = Vec::new();
            if pad > 0 {
                let mut big = Vec::new();
                abi::append_entry(&mut big, b"pad", &vec![b'p'; pad]);
                canned.push(big);
            }
            if !v.encoded.is_empty() {
                canned.push(v.encoded.clone());
            }
            let spy = Rc::new(RefCell::new(HeaderSpy {
                canned,
                ..Default::default()
            }));
            let mut got = Vec::new();
            let call = testing::call_records(
                &spy,
                testing::new_generation(),
                &one_record(),
                &mut |_: &Record| -> streamrt::Result<()> {
                    let s = Store::new("s");
                    let mut it = s.range(None, None)?;
                    while let Some((k, val)) = it.next_entry()? {
                        if k != b"pad" {
                            got.push((k.to_vec(), val.to_vec()));
                        }
                    }
                    Ok(())
                },
            );
            assert_eq!(call, Call::Returned(0));
            assert_eq!(got, v.entries, "{}: iterated (pad {})", v.at(), pad);
        }
    }
}

#[test]
fn queries_decode_and_reencode() {
    for v in vectors("query") {
        let want = v.query.request();
        let mut enc = Vec::new();
        abi::append_query_request(&mut enc, &want);
        assert_eq!(enc, v.encoded, "{}: encode", v.at());
        let got =
            abi::decode_query_request(&v.encoded).unwrap_or_else(|e| panic!("{}: {}", v.at(), e));
        assert_eq!(got, want, "{}: decode", v.at());
    }
}

#[test]
fn queries_through_a_query_handler() {
    for v in vectors("query") {
        let host = FakeHost::new();
        let want = v.query.request();
        let mut calls = 0;
        let (call, resp) = host.query(&want, |q: &Query| -> streamrt::Result<Response> {
            calls += 1;
            assert_eq!(
                (
                    q.partition,
                    q.method,
                    q.route,
                    q.path,
                    q.raw_query(),
                    q.body
                ),
                (
                    want.partition,
                    want.method,
                    want.route,
                    want.path,
                    want.raw_query,
                    want.body
                ),
                "{}",
                v.at()
            );
            for p in &want.params {
                assert_eq!(
                    q.param(p.name),
                    Some(p.value),
                    "{}: param {}",
                    v.at(),
                    p.name
                );
            }
            assert_eq!(q.param("no-such-param"), None);
            Ok(Response::text(q.path))
        });
        assert_eq!(call, Call::Returned(0), "{}", v.at());
        assert_eq!(calls, 1);
        assert_eq!(resp, Some(Response::text(want.path)), "{}", v.at());
    }
}

#[test]
fn corrupted_queries_fail_without_panicking() {
    for v in vectors("query") {
        // Every byte set to values that break lengths and text: the decoder
        // answers, with a request or an error, and never panics.
        for i in 0..v.encoded.len() {
            for b in [0x00, 0x7f, 0x80, 0xc3, 0xff] {
                let mut enc = v.encoded.clone();
                enc[i] = b;
                if let Ok(q) = abi::decode_query_request(&enc) {
                    let mut again = Vec::new();
                    abi::append_query_request(&mut again, &q);
                    assert_eq!(again, enc, "{}: byte {} = {:#x}", v.at(), i, b);
                }
            }
        }
    }
}

#[test]
fn emits_encode_and_decode() {
    for v in vectors("emits") {
        let lists: Vec<Vec<u8>> = v.emits.iter().map(OwnedEmit::header_list).collect();
        let mut enc = Vec::new();
        for (e, list) in v.emits.iter().zip(&lists) {
            abi::append_emit(
                &mut enc,
                &abi::Emit {
                    output: e.output,
                    rec: e.rec,
                    timestamp: e.ts,
                    key: e.key.as_deref(),
                    value: e.value.as_deref(),
                    headers: list,
                },
            );
        }
        assert_eq!(enc, v.encoded, "{}: encode", v.at());
        let got = abi::decode_emits(&v.encoded).unwrap_or_else(|e| panic!("{}: {}", v.at(), e));
        assert_eq!(got.len(), v.emits.len(), "{}", v.at());
        for ((g, e), list) in got.iter().zip(&v.emits).zip(&lists) {
            assert_eq!(
                (g.output, g.rec, g.timestamp, g.key, g.value, g.headers),
                (
                    e.output,
                    e.rec,
                    e.ts,
                    e.key.as_deref(),
                    e.value.as_deref(),
                    list.as_slice()
                ),
                "{}: decode",
                v.at()
            );
        }
    }
}

/// A host that keeps every emit_batch buffer as it is given; output "oN"
/// has handle N.
#[derive(Default)]
struct BatchSpy {
    spy: HeaderSpy,
    buffers: Vec<Vec<u8>>,
}

impl Host for BatchSpy {
    fn store_open(&mut self, n: &[u8]) -> i32 {
        self.spy.store_open(n)
    }
    fn store_get(&mut self, s: i32, k: Option<&[u8]>, b: &mut [u8]) -> i32 {
        self.spy.store_get(s, k, b)
    }
    fn store_put(&mut self, s: i32, r: i32, k: Option<&[u8]>, v: Option<&[u8]>) -> i32 {
        self.spy.store_put(s, r, k, v)
    }
    fn store_delete(&mut self, s: i32, r: i32, k: Option<&[u8]>) -> i32 {
        self.spy.store_delete(s, r, k)
    }
    fn store_range(&mut self, s: i32, a: Option<&[u8]>, b: Option<&[u8]>) -> i32 {
        self.spy.store_range(s, a, b)
    }
    fn range_next(&mut self, i: i32, b: &mut [u8]) -> i32 {
        self.spy.range_next(i, b)
    }
    fn range_close(&mut self, i: i32) -> i32 {
        self.spy.range_close(i)
    }
    fn output_open(&mut self, name: &[u8]) -> i32 {
        std::str::from_utf8(&name[1..]).unwrap().parse().unwrap()
    }
    fn emit(
        &mut self,
        o: i32,
        r: i32,
        k: Option<&[u8]>,
        v: Option<&[u8]>,
        h: &[u8],
        ts: i64,
    ) -> i32 {
        self.spy.emit(o, r, k, v, h, ts)
    }
    fn emit_batch(&mut self, buf: &[u8]) -> i32 {
        self.buffers.push(buf.to_vec());
        testing::emit_entries(self, buf)
    }
    fn log(&mut self, l: i32, m: &[u8]) {
        self.spy.log(l, m)
    }
    fn record_error(&mut self, r: i32, m: &[u8]) -> i32 {
        self.spy.record_error(r, m)
    }
}

/// The SDK's emit buffer holds the vectors' bytes: each vector's entries,
/// emitted by a batch handler (outside its loop for record -1, in it for
/// the others), reach the host as one emit_batch buffer equal to the
/// vector's encoding.
#[test]
fn emits_through_the_sdk() {
    for v in vectors("emits") {
        let records = v.emits.iter().map(|e| e.rec + 1).max().unwrap_or(0).max(0);
        let batch = abi::encode_batch(&Batch {
            stream_time: -1,
            topics: vec![],
            records: (0..records)
                .map(|_| OwnedRecord {
                    topic: "in".into(),
                    ..Default::default()
                })
                .collect(),
        });
        let spy = Rc::new(RefCell::new(BatchSpy::default()));
        let mut next = 0;
        let emits = &v.emits;
        let mut emit_for = |rec: i32| -> streamrt::Result<()> {
            while next < emits.len() && emits[next].rec == rec {
                let e = &emits[next];
                let hs: Vec<Header> = e.headers.iter().map(borrow_header).collect();
                let mut opts = EmitOptions::new();
                if e.ts != abi::INHERIT_TIMESTAMP {
                    opts = opts.timestamp(e.ts);
                }
                if e.list {
                    opts = opts.headers(&hs);
                }
                let name = format!("o{}", e.output);
                streamrt::emit_with(&name, e.key.as_deref(), e.value.as_deref(), opts)?;
                next += 1;
            }
            Ok(())
        };
        let call = testing::call_batch(
            &spy,
            testing::new_generation(),
            &batch,
            &mut |b: &streamrt::Batch| -> streamrt::Result<()> {
                emit_for(abi::NO_RECORD)?;
                for r in b.all() {
                    emit_for(r.index() as i32)?;
                }
                emit_for(abi::NO_RECORD)
            },
        );
        assert_eq!(call, Call::Returned(0), "{}", v.at());
        assert_eq!(
            next,
            v.emits.len(),
            "{}: the emits' records are out of order",
            v.at()
        );
        let buffers = spy.borrow().buffers.clone();
        let want: Vec<Vec<u8>> = if v.encoded.is_empty() {
            vec![]
        } else {
            vec![v.encoded.clone()]
        };
        assert_eq!(buffers, want, "{}: emit_batch buffers", v.at());
    }
}
