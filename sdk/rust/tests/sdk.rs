//! The SDK's behaviour off wasm, against the testing hosts: failures and
//! panics, attribution, buffer growth, iterator lifetimes, handle caching,
//! query handlers.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use streamrt::abi::{self, Batch as AbiBatch, OwnedRecord, Param, QueryRequest};
use streamrt::testing::{self, Call, FakeHost, Host, Policy};
use streamrt::{
    Batch, Code, EmitOptions, Error, Header, Output, Query, Range, Record, Response, Result, Store,
};

fn batch_of(values: &[&str]) -> Vec<OwnedRecord> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| OwnedRecord {
            topic: "in".into(),
            partition: 3,
            offset: 10 + i as i64,
            timestamp: 900 + i as i64,
            key: Some(format!("k{}", i).into_bytes()),
            value: Some(v.as_bytes().to_vec()),
            headers: vec![],
        })
        .collect()
}

fn encode(recs: Vec<OwnedRecord>) -> Vec<u8> {
    abi::encode_batch(&AbiBatch {
        stream_time: 1000,
        topics: vec![],
        records: recs,
    })
}

/// A host that records what the guest asks of it.
#[derive(Default)]
struct Spy {
    opens: usize,
    emits: Vec<(i32, String)>,
    writes: Vec<(i32, String)>,
    errors: Vec<(i32, String)>,
    logs: Vec<(i32, String)>,
    responses: Vec<(i32, String, String)>,
}

impl Host for Spy {
    fn store_open(&mut self, name: &[u8]) -> i32 {
        self.opens += 1;
        if name == b"nope" {
            Code::UnknownStore.raw()
        } else {
            0
        }
    }
    fn store_get(&mut self, _: i32, _: Option<&[u8]>, _: &mut [u8]) -> i32 {
        Code::NotFound.raw()
    }
    fn store_put(&mut self, _: i32, rec: i32, key: Option<&[u8]>, _: Option<&[u8]>) -> i32 {
        self.writes
            .push((rec, String::from_utf8_lossy(key.unwrap()).into_owned()));
        0
    }
    fn store_delete(&mut self, _: i32, rec: i32, key: Option<&[u8]>) -> i32 {
        self.writes
            .push((rec, format!("-{}", String::from_utf8_lossy(key.unwrap()))));
        0
    }
    fn store_range(&mut self, _: i32, _: Option<&[u8]>, _: Option<&[u8]>) -> i32 {
        0
    }
    fn range_next(&mut self, _: i32, _: &mut [u8]) -> i32 {
        0
    }
    fn range_close(&mut self, _: i32) -> i32 {
        0
    }
    fn output_open(&mut self, name: &[u8]) -> i32 {
        self.opens += 1;
        if name == b"nope" {
            Code::UnknownOutput.raw()
        } else {
            0
        }
    }
    fn emit(
        &mut self,
        _: i32,
        rec: i32,
        _: Option<&[u8]>,
        value: Option<&[u8]>,
        _: &[u8],
        _: i64,
    ) -> i32 {
        self.emits.push((
            rec,
            String::from_utf8_lossy(value.unwrap_or(b"<null>")).into_owned(),
        ));
        0
    }
    fn log(&mut self, level: i32, msg: &[u8]) {
        self.logs
            .push((level, String::from_utf8_lossy(msg).into_owned()));
    }
    fn record_error(&mut self, rec: i32, msg: &[u8]) -> i32 {
        self.errors
            .push((rec, String::from_utf8_lossy(msg).into_owned()));
        0
    }
    fn respond(&mut self, status: i32, content_type: &[u8], body: &[u8]) -> i32 {
        self.responses.push((
            status,
            String::from_utf8_lossy(content_type).into_owned(),
            String::from_utf8_lossy(body).into_owned(),
        ));
        0
    }
}

fn spy() -> Rc<RefCell<Spy>> {
    Rc::new(RefCell::new(Spy::default()))
}

struct Custom(u32);

impl fmt::Display for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "custom {}", self.0)
    }
}

#[test]
fn a_failing_record_fails_alone_whatever_its_error_type() {
    fn check<E: fmt::Display>(fail: impl Fn() -> std::result::Result<(), E>, want: &str) {
        let h = spy();
        let call = testing::call_records(
            &h,
            testing::new_generation(),
            &encode(batch_of(&["a", "bad", "c", "bad"])),
            &mut |r: &Record| {
                streamrt::emit("out", r.key, r.value)
                    .map_err(|e| panic!("{}", e))
                    .ok();
                if r.value == Some(b"bad") {
                    return fail();
                }
                Ok(())
            },
        );
        assert_eq!(call, Call::Returned(0));
        let h = h.borrow();
        assert_eq!(h.errors, vec![(1, want.to_string()), (3, want.to_string())]);
        let recs: Vec<i32> = h.emits.iter().map(|e| e.0).collect();
        assert_eq!(
            recs,
            vec![0, 2],
            "emits are attributed to their records, and a failed record's never reach the host"
        );
    }
    check(|| Err(Error::new("bad record")), "bad record");
    check(|| Err("a str"), "a str");
    check(|| Err(String::from("a string")), "a string");
    check(|| Err(Custom(7)), "custom 7");
    check(
        || -> std::result::Result<(), Box<dyn std::error::Error>> { Err("boxed".into()) },
        "boxed",
    );
    check(
        || -> Result<()> { Err(Store::new("nope").get(b"k").unwrap_err()) },
        "streamrt: store_open \"nope\": unknown store",
    );
}

#[test]
fn a_panic_is_reported_against_its_record_before_the_trap() {
    let h = spy();
    let call = testing::call_records(
        &h,
        testing::new_generation(),
        &encode(batch_of(&["a", "boom", "c"])),
        &mut |r: &Record| -> Result<()> {
            if r.value == Some(b"boom") {
                let v: Vec<u8> = Vec::new();
                let _ = v[r.index()];
            }
            streamrt::emit("out", r.key, r.value)
        },
    );
    match call {
        Call::Trapped(msg) => assert!(msg.contains("index out of bounds"), "{}", msg),
        other => panic!("got {:?}, want a trap", other),
    }
    let h = h.borrow();
    assert_eq!(h.errors.len(), 1);
    assert_eq!(h.errors[0].0, 1);
    assert_eq!(
        h.errors[0].1,
        "panic: index out of bounds: the len is 0 but the index is 1"
    );
    assert!(
        h.logs.iter().any(|(l, m)| *l == 3
            && m.starts_with("streamrt: record 1: panic: index out of bounds")
            && m.contains("(at tests/sdk.rs:")),
        "logs: {:?}",
        h.logs
    );
}

#[test]
fn the_fake_host_replays_a_trapped_batch_and_applies_the_policy() {
    let host = FakeHost::new()
        .store("s")
        .output("out", "out-topic")
        .policy(Policy::DeadLetter("dlq".into()));
    let handle = |r: &Record| -> Result<()> {
        Store::new("s").put(r.key.unwrap(), b"1")?;
        if r.value == Some(b"boom") {
            panic!("boom at {}", r.offset);
        }
        if r.value == Some(b"bad") {
            return Err(Error::new("bad"));
        }
        streamrt::emit("out", r.key, r.value)
    };
    host.run_records(&batch_of(&["a", "boom", "bad", "d"]), handle)
        .unwrap();
    let emitted = host.emitted();
    let out: Vec<_> = emitted
        .iter()
        .filter(|e| e.topic == "out-topic")
        .map(|e| e.key.clone().unwrap())
        .collect();
    assert_eq!(out, vec![b"k0".to_vec(), b"k3".to_vec()]);
    let dead: Vec<_> = emitted.iter().filter(|e| e.topic == "dlq").collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].header("streamrt.error.kind"), Some(&b"trap"[..]));
    assert!(
        String::from_utf8_lossy(dead[0].header("streamrt.error").unwrap())
            .starts_with("panic: boom at 11 (")
    );
    assert_eq!(dead[1].header("streamrt.error"), Some(&b"bad"[..]));
    assert_eq!(dead[1].header("streamrt.error.kind"), Some(&b"record"[..]));
    assert_eq!(dead[1].header("streamrt.source.offset"), Some(&b"12"[..]));
    assert_eq!(
        host.entries("s").len(),
        2,
        "the failed records' puts are undone"
    );

    let host = FakeHost::new()
        .store("s")
        .output("out", "out-topic")
        .policy(Policy::Fail);
    let stopped = host
        .run_records(&batch_of(&["a", "bad", "c"]), handle)
        .unwrap_err();
    assert_eq!((stopped.offset, stopped.reason.as_str()), (11, "bad"));
    assert!(
        host.entries("s").is_empty(),
        "a stopped run's effects are dropped"
    );
    assert_eq!(
        host.run_records(&batch_of(&["a"]), handle).unwrap_err(),
        stopped,
        "a stopped task runs nothing more"
    );
}

#[test]
fn batch_handlers_attribute_effects_inside_all() {
    let h = spy();
    static S: Store = Store::new("s");
    let call = testing::call_batch(
        &h,
        testing::new_generation(),
        &encode(batch_of(&["a", "bad", "c"])),
        &mut |b: &Batch| -> Result<()> {
            assert_eq!(b.stream_time(), 1000);
            streamrt::emit("out", None, Some(b"before"))?;
            for r in b.all() {
                streamrt::emit("out", r.key, r.value)?;
                S.put(r.key.unwrap(), b"x")?;
                if r.value == Some(b"bad") {
                    b.fail(r.index(), "bad value");
                }
            }
            S.put(b"total", b"3")?;
            // Reading a record does not attribute; a loop left early restores.
            let _ = b.record(2);
            if let Some(r) = b.all().next() {
                assert_eq!(r.index(), 0);
            }
            S.delete(b"gone")?;
            streamrt::emit("out", None, Some(b"after"))
        },
    );
    assert_eq!(call, Call::Returned(0));
    let h = h.borrow();
    let emits: Vec<String> = h
        .emits
        .iter()
        .map(|(r, v)| format!("{}:{}", r, v))
        .collect();
    // Batch::fail drops the failed record's buffered emit.
    assert_eq!(emits, ["-1:before", "0:a", "2:c", "-1:after"]);
    let writes: Vec<String> = h
        .writes
        .iter()
        .map(|(r, k)| format!("{}:{}", r, k))
        .collect();
    assert_eq!(writes, ["0:k0", "1:k1", "2:k2", "-1:total", "-1:-gone"]);
    assert_eq!(h.errors, vec![(1, "bad value".to_string())]);
}

#[test]
fn batch_handler_failures_fail_the_batch() {
    let cases: Vec<(&str, Box<dyn Fn(&Batch) -> Result<()>>, Vec<(i32, &str)>)> = vec![
        (
            "error",
            Box::new(|_| Err(Error::new("no good"))),
            vec![(-1, "no good")],
        ),
        (
            "panic outside a loop",
            Box::new(|_| panic!("boom")),
            vec![(-1, "panic: boom")],
        ),
        (
            "panic in a loop",
            Box::new(|b| {
                for r in b.all() {
                    if r.index() == 1 {
                        panic!("boom");
                    }
                }
                Ok(())
            }),
            vec![(1, "panic: boom")],
        ),
        (
            "fail out of range",
            Box::new(|b| {
                b.fail(3, "x");
                Ok(())
            }),
            vec![(
                -1,
                "panic: streamrt: Batch::fail: record index out of range",
            )],
        ),
    ];
    for (name, f, want) in cases {
        let h = spy();
        let call = testing::call_batch(
            &h,
            testing::new_generation(),
            &encode(batch_of(&["a", "b", "c"])),
            &mut |b: &Batch| f(b),
        );
        assert_ne!(call, Call::Returned(0), "{}", name);
        let want: Vec<(i32, String)> = want.into_iter().map(|(r, m)| (r, m.to_string())).collect();
        assert_eq!(h.borrow().errors, want, "{}", name);
    }
}

#[test]
fn a_malformed_batch_fails_with_the_decoder_error() {
    let h = spy();
    let mut enc = encode(batch_of(&["a"]));
    enc.truncate(enc.len() - 2);
    let call = testing::call_records(
        &h,
        testing::new_generation(),
        &enc,
        &mut |_: &Record| -> Result<()> { Ok(()) },
    );
    assert_eq!(call, Call::Returned(1));
    let errs = &h.borrow().errors;
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, -1);
    assert!(
        errs[0].1.starts_with("streamrt: abi: decode record 0 "),
        "{}",
        errs[0].1
    );
}

#[test]
fn get_grows_its_buffer_for_large_values() {
    let host = FakeHost::new().store("s");
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    host.set("s", b"big", &big);
    host.set("s", b"small", b"v");
    host.set("s", b"empty", b"");
    let mut reused = Vec::with_capacity(4);
    host.run_records(&batch_of(&["x"]), |_: &Record| -> Result<()> {
        let s = Store::new("s");
        assert_eq!(s.get(b"big")?.as_deref(), Some(&big[..]));
        assert_eq!(s.get(b"big")?.as_deref(), Some(&big[..]));
        assert_eq!(s.get(b"small")?.as_deref(), Some(&b"v"[..]));
        assert_eq!(s.get(b"empty")?, Some(Vec::new()));
        assert_eq!(s.get(b"none")?, None);
        assert!(s.get_into(b"big", &mut reused)?);
        assert_eq!(reused, big);
        assert!(!s.get_into(b"none", &mut reused)?);
        assert!(reused.is_empty());
        assert!(s.contains(b"big")? && s.contains(b"empty")? && !s.contains(b"none")?);
        Ok(())
    })
    .unwrap();
    assert!(host.failures().is_empty(), "{:?}", host.failures());
    assert_eq!(
        host.too_small().0,
        2,
        "once for the first get of big, once for contains(big), which passes no buffer"
    );
}

#[test]
fn ranges_grow_their_buffer_and_see_a_snapshot() {
    let host = FakeHost::new().store("s");
    for i in 0..300 {
        host.set("s", format!("r{:04}", i).as_bytes(), &[b'v'; 100]);
    }
    host.set("s", b"w", &[b'w'; 9000]);
    host.run_records(&batch_of(&["x"]), |_: &Record| -> Result<()> {
        let s = Store::new("s");
        let mut it = s.range(None, None)?;
        s.put(b"r9999", b"late")?;
        let mut n = 0;
        while let Some((k, v)) = it.next_entry()? {
            assert!(v.len() == 100 || k == b"w");
            n += 1;
        }
        assert_eq!(n, 301);
        assert_eq!(
            it.next_entry()?,
            None,
            "an exhausted iterator stays exhausted"
        );
        let keys: Vec<Vec<u8>> = s
            .prefix(b"r000")?
            .map(|e| e.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        assert_eq!(keys.len(), 10);
        assert_eq!(s.range(Some(b"r0100"), Some(b"r0102"))?.count(), 2);
        assert_eq!(
            s.range(Some(b"r"), Some(b""))?.count(),
            0,
            "an empty end makes an empty range"
        );
        assert_eq!(s.range(Some(b"r0299"), None)?.count(), 3);
        s.range(None, None)?.close()?;
        Ok(())
    })
    .unwrap();
    assert!(host.failures().is_empty(), "{:?}", host.failures());
    assert!(
        host.too_small().1 >= 1,
        "the 9000-byte entry made the iterator grow its buffer"
    );
}

thread_local! {
    static KEPT: RefCell<Option<Range<'static>>> = const { RefCell::new(None) };
}

#[test]
fn an_iterator_is_closed_when_its_batch_ends() {
    static S: Store = Store::new("s");
    let host = FakeHost::new().store("s");
    host.set("s", b"a", b"1");
    host.set("s", b"b", b"2");
    host.run_records(&batch_of(&["x"]), |_: &Record| -> Result<()> {
        let it = S.range(None, None)?;
        KEPT.with(|k| *k.borrow_mut() = Some(it));
        Ok(())
    })
    .unwrap();
    host.run_records(&batch_of(&["y"]), |_: &Record| -> Result<()> {
        // A new iterator gets the host's handle the stale one had.
        let mut fresh = S.range(None, None)?;
        let mut stale = KEPT.with(|k| k.borrow_mut().take()).unwrap();
        let err = stale.next_entry().unwrap_err();
        assert!(err.is_iterator_closed(), "{}", err);
        assert_eq!(
            err.to_string(),
            "streamrt: iterator used after its batch ended"
        );
        drop(stale); // must not close the fresh iterator's handle
        assert_eq!(fresh.next_entry()?, Some((&b"a"[..], &b"1"[..])));
        assert_eq!(fresh.next_entry()?, Some((&b"b"[..], &b"2"[..])));
        Ok(())
    })
    .unwrap();
    assert!(host.failures().is_empty(), "{:?}", host.failures());
}

#[test]
fn handles_are_opened_once_and_undeclared_ones_are_remembered() {
    static NOPE: Store = Store::new("nope");
    static OUT: Output = Output::new("out");
    let h = spy();
    let gen = testing::new_generation();
    for _ in 0..2 {
        let call = testing::call_records(
            &h,
            gen,
            &encode(batch_of(&["a", "b"])),
            &mut |r: &Record| -> Result<()> {
                let err = NOPE.put(b"k", b"v").unwrap_err();
                assert_eq!(err.code(), Some(Code::UnknownStore));
                assert_eq!(err.host_function(), Some("store_open"));
                assert_eq!(
                    err.to_string(),
                    "streamrt: store_open \"nope\": unknown store"
                );
                let err = streamrt::emit("nope", None, None).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    "streamrt: output_open \"nope\": unknown output"
                );
                streamrt::emit("out", r.key, r.value)?;
                streamrt::emit("side", r.key, r.value)?;
                OUT.emit_with(r.key, r.value, EmitOptions::new().timestamp(5))
            },
        );
        assert_eq!(call, Call::Returned(0));
    }
    // nope (store), nope (output), out (by name), side, OUT: once each.
    assert_eq!(h.borrow().opens, 5);
    // A new instance opens them again.
    let call = testing::call_records(
        &h,
        testing::new_generation(),
        &encode(batch_of(&["a"])),
        &mut |r: &Record| -> Result<()> { OUT.emit(r.key, r.value) },
    );
    assert_eq!(call, Call::Returned(0));
    assert_eq!(h.borrow().opens, 6);
}

#[test]
fn logging() {
    let h = spy();
    let call = testing::call_records(
        &h,
        testing::new_generation(),
        &encode(batch_of(&["a"])),
        &mut |r: &Record| -> Result<()> {
            streamrt::debug!("d {}", 1);
            streamrt::info!("i {}", r.offset);
            streamrt::warn!("w");
            streamrt::error!("e");
            streamrt::log(streamrt::Level::Warn, "plain");
            Ok(())
        },
    );
    assert_eq!(call, Call::Returned(0));
    let want: Vec<(i32, String)> = vec![
        (0, "d 1".into()),
        (1, "i 10".into()),
        (2, "w".into()),
        (3, "e".into()),
        (2, "plain".into()),
    ];
    assert_eq!(h.borrow().logs, want);
}

#[test]
fn records_expose_their_fields_and_headers() {
    let host = FakeHost::new().output("out", "t");
    let mut rec = batch_of(&["v"]).remove(0);
    rec.key = None;
    rec.headers = vec![
        abi::OwnedHeader {
            key: b"a".to_vec(),
            value: Some(b"1".to_vec()),
        },
        abi::OwnedHeader {
            key: b"n".to_vec(),
            value: None,
        },
        abi::OwnedHeader {
            key: b"a".to_vec(),
            value: Some(b"2".to_vec()),
        },
    ];
    host.run_records(&[rec], |r: &Record| -> Result<()> {
        assert_eq!(
            (r.topic, r.partition, r.offset, r.timestamp, r.key, r.value),
            ("in", 3, 10, 900, None, Some(&b"v"[..]))
        );
        assert_eq!(r.headers().len(), 3);
        assert_eq!(r.header(b"a").unwrap().value, Some(&b"1"[..]));
        assert_eq!(r.header(b"n").unwrap().value, None);
        assert!(r.header(b"x").is_none());
        assert_eq!(streamrt::stream_time(), 900);
        streamrt::emit_with(
            "out",
            r.key,
            None,
            EmitOptions::new().record_headers(r.headers()),
        )
    })
    .unwrap();
    let e = &host.emitted()[0];
    assert_eq!(
        (
            e.key.as_deref(),
            e.value.as_deref(),
            e.timestamp,
            e.headers.len()
        ),
        (None, None, 900, 3)
    );
}

#[test]
fn tables_are_read_only() {
    let host = FakeHost::new().table("products").store("s");
    host.set("products", b"p1", b"{\"name\":\"pen\"}");
    host.run_records(&batch_of(&["x"]), |_: &Record| -> Result<()> {
        let products = Store::new("products");
        assert_eq!(
            products.get(b"p1")?.as_deref(),
            Some(&b"{\"name\":\"pen\"}"[..])
        );
        let err = products.put(b"p1", b"x").unwrap_err();
        assert_eq!(err.code(), Some(Code::ReadOnly));
        assert_eq!(
            err.to_string(),
            "streamrt: store_put \"products\": store is read-only"
        );
        let err = products.delete(b"p1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "streamrt: store_delete \"products\": store is read-only"
        );
        Store::new("s").put(b"k", b"v")
    })
    .unwrap();
    assert_eq!(host.get("s", b"k"), Some(b"v".to_vec()));
}

fn chart_request(genre: &'static str) -> QueryRequest<'static> {
    QueryRequest {
        partition: 3,
        method: "GET",
        route: "/charts/genre/{genre}",
        path: "/charts/genre/rock",
        raw_query: "pretty=1&limit=5",
        params: vec![Param {
            name: "genre",
            value: genre,
        }],
        body: b"",
    }
}

#[test]
fn a_query_handler_reads_stores_and_answers() {
    static CHARTS: Store = Store::new("charts");
    let host = FakeHost::new().store("charts").output("out", "out-topic");
    host.set("charts", b"rock", br#"[{"name":"a"}]"#);
    host.set("charts", b"rock/2", b"b");
    // What the query's put and emit returned.
    let refused = RefCell::new(Vec::new());
    let serve = |q: &Query| -> Result<Response> {
        refused.borrow_mut().push(CHARTS.put(b"x", b"y"));
        refused
            .borrow_mut()
            .push(streamrt::emit("out", None, Some(b"v")));
        let genre = q.param("genre").ok_or("no genre")?;
        if q.query_value("pretty").as_deref() != Some("1")
            || q.partition != 3
            || q.route != "/charts/genre/{genre}"
            || q.method != "GET"
        {
            return Ok(Response::new(
                400,
                "text/plain",
                format!("unexpected request {:?}", q),
            ));
        }
        let n = CHARTS.prefix(genre.as_bytes())?.count();
        Ok(match CHARTS.get(genre.as_bytes())? {
            Some(chart) => {
                let mut r = Response::json(chart);
                r.content_type.push_str("; entries=");
                r.content_type.push_str(&n.to_string());
                r
            }
            None => Response::error(404, format_args!("unknown genre {}", genre)),
        })
    };
    let (call, resp) = host.query(&chart_request("rock"), serve);
    assert_eq!(call, Call::Returned(0));
    assert_eq!(
        resp,
        Some(Response::new(
            200,
            "application/json; entries=2",
            &br#"[{"name":"a"}]"#[..]
        ))
    );
    let errs: Vec<Error> = refused
        .take()
        .into_iter()
        .map(|r| r.expect_err("a query wrote or emitted"))
        .collect();
    assert_eq!(errs[0].code(), Some(Code::ReadOnly));
    assert_eq!(
        errs[0].to_string(),
        "streamrt: store_put \"charts\": store is read-only"
    );
    assert_eq!(errs[1].code(), Some(Code::NotAllowed));
    assert_eq!(
        errs[1].to_string(),
        "streamrt: output_open \"out\": not allowed"
    );
    assert_eq!(
        host.get("charts", b"x"),
        None,
        "a query's put reached the store"
    );
    assert!(host.emitted().is_empty());

    let (_, resp) = host.query(&chart_request("jazz"), serve);
    assert_eq!(
        resp,
        Some(Response::new(
            404,
            "application/json",
            &br#"{"error":"unknown genre jazz"}"#[..]
        ))
    );

    // Batches still write and emit after a query.
    host.run_records(&batch_of(&["a"]), |r: &Record| -> Result<()> {
        CHARTS.put(r.key.unwrap(), b"1")?;
        streamrt::emit("out", r.key, r.value)
    })
    .unwrap();
    assert_eq!(host.get("charts", b"k0"), Some(b"1".to_vec()));
    assert_eq!(host.emitted().len(), 1);
}

#[test]
fn a_query_handler_panic_answers_500_before_the_trap() {
    let host = FakeHost::new().output("out", "t");
    let req = QueryRequest {
        partition: -1,
        method: "GET",
        route: "/x",
        path: "/x",
        ..Default::default()
    };
    let (call, resp) = host.query(&req, |q: &Query| -> Result<Response> {
        panic!("no chart for {}", q.path)
    });
    assert_eq!(call, Call::Trapped("no chart for /x".to_string()));
    assert_eq!(
        resp,
        Some(Response::new(
            500,
            "application/json",
            &br#"{"error":"panic: no chart for /x"}"#[..]
        ))
    );
    assert!(
        host.logs().iter().any(|(l, m)| *l == 3
            && m.starts_with("streamrt: query handler: panic: no chart for /x (at tests/sdk.rs:")),
        "logs: {:?}",
        host.logs()
    );
    assert!(host.record_errors().is_empty());

    // The next batch's panic is a record's again.
    host.run_records(&batch_of(&["a"]), |_: &Record| -> Result<()> {
        panic!("boom")
    })
    .unwrap();
    assert_eq!(host.failures().len(), 1);
    assert!(host.failures()[0].message.starts_with("panic: boom"));
}

#[test]
fn query_handler_failures_answer_json_errors() {
    let req = QueryRequest {
        partition: -1,
        method: "POST",
        route: "/notes/",
        path: "/notes/a",
        body: br#"{"note":"hi"}"#,
        ..Default::default()
    };
    let cases: Vec<(&str, Box<dyn Fn(&Query) -> Result<Response>>, Response)> = vec![
        (
            "an Err",
            Box::new(|q| Err(Error::new(format!("cannot take {}", q.body.len())))),
            Response::error(500, "cannot take 13"),
        ),
        (
            "a host error",
            Box::new(|_| {
                Ok(Response::json(
                    Store::new("nope").get(b"k")?.unwrap_or_default(),
                ))
            }),
            Response::error(500, "streamrt: store_open \"nope\": unknown store"),
        ),
        (
            "a status under 200",
            Box::new(|_| Ok(Response::text("early").with_status(99))),
            Response::error(500, "streamrt: respond \"status 99\": invalid argument"),
        ),
        (
            "a status over 599",
            Box::new(|_| Ok(Response::default().with_status(600))),
            Response::error(500, "streamrt: respond \"status 600\": invalid argument"),
        ),
        (
            "an empty answer",
            Box::new(|_| Ok(Response::default())),
            Response::new(200, "", Vec::new()),
        ),
        (
            "a status from the whole range",
            Box::new(|q| Ok(Response::new(201, "application/json", q.body))),
            Response::new(201, "application/json", &br#"{"note":"hi"}"#[..]),
        ),
    ];
    for (name, f, want) in cases {
        let host = FakeHost::new();
        let (call, resp) = host.query(&req, |q: &Query| f(q));
        assert_eq!(call, Call::Returned(0), "{}", name);
        assert_eq!(resp, Some(want), "{}", name);
    }
}

#[test]
fn a_request_that_is_not_utf8_is_a_400_and_a_malformed_one_a_500() {
    let mut enc = Vec::new();
    abi::append_query_request(
        &mut enc,
        &QueryRequest {
            partition: 1,
            method: "GET",
            route: "/k/{key}",
            path: "/k/\u{e9}",
            params: vec![Param {
                name: "key",
                value: "\u{e9}",
            }],
            ..Default::default()
        },
    );
    // "é" is c3 a9; a lone a9 is not UTF-8 (as a client's /k/%A9 would be).
    let at = enc.iter().position(|&b| b == 0xc3).unwrap();
    let mut bad = enc.clone();
    bad[at] = b'x';
    let h = spy();
    let mut calls = 0;
    let mut handler = |_: &Query| -> Result<Response> {
        calls += 1;
        Ok(Response::default())
    };
    let call = testing::call_query(&h, testing::new_generation(), &bad, &mut handler);
    assert_eq!(call, Call::Returned(0));
    let call = testing::call_query(
        &h,
        testing::new_generation(),
        &enc[..enc.len() - 1],
        &mut handler,
    );
    assert_eq!(call, Call::Returned(0));
    assert_eq!(calls, 0);
    let h = h.borrow();
    assert_eq!(h.responses.len(), 2);
    assert_eq!(
        h.responses[0],
        (
            400,
            "application/json".to_string(),
            r#"{"error":"streamrt: abi: decode query path at byte 23: not UTF-8"}"#.to_string()
        )
    );
    assert_eq!(h.responses[1].0, 500);
    assert!(
        h.responses[1].2.contains("decode query body"),
        "{}",
        h.responses[1].2
    );
}

#[test]
fn respond_is_refused_outside_a_query() {
    let host = FakeHost::new();
    host.run_records(&batch_of(&["a"]), |_: &Record| -> Result<()> {
        let (p, n) = (b"text/plain".as_ptr(), 10);
        let rc = unsafe { streamrt::sys::respond(200, p, n, b"x".as_ptr(), 1) };
        assert_eq!(Code::from_result(rc), Some(Code::NotAllowed));
        Ok(())
    })
    .unwrap();
    assert!(host.failures().is_empty(), "{:?}", host.failures());
}

thread_local! {
    static KEPT_IN_QUERY: RefCell<Option<Range<'static>>> = const { RefCell::new(None) };
}

#[test]
fn a_query_iterator_is_closed_when_the_query_ends() {
    static S: Store = Store::new("s");
    let host = FakeHost::new().store("s");
    host.set("s", b"a", b"1");
    let req = QueryRequest {
        partition: 0,
        method: "GET",
        route: "/all",
        path: "/all",
        ..Default::default()
    };
    let (_, resp) = host.query(&req, |_: &Query| -> Result<Response> {
        KEPT_IN_QUERY.with(|k| *k.borrow_mut() = Some(S.range(None, None).unwrap()));
        Ok(Response::default())
    });
    assert_eq!(resp.map(|r| r.status), Some(200));
    let (_, resp) = host.query(&req, |_: &Query| -> Result<Response> {
        let mut stale = KEPT_IN_QUERY.with(|k| k.borrow_mut().take()).unwrap();
        assert!(stale.next_entry().unwrap_err().is_iterator_closed());
        let keys: Vec<Vec<u8>> = S
            .range(None, None)?
            .map(|e| e.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        Ok(Response::text(String::from_utf8_lossy(&keys.concat())))
    });
    assert_eq!(resp, Some(Response::text("a")));
}

// The macro's fullest form parses (off wasm it defines no exports).
fn full_batch(_: &Batch) -> Result<()> {
    Ok(())
}
fn full_init() -> std::result::Result<(), String> {
    Ok(())
}
fn full_query(q: &Query) -> std::result::Result<Response, &'static str> {
    Ok(Response::text(q.path))
}
streamrt::export_stage!(batch: full_batch, init: full_init, query: full_query,);

fn keys(host: &FakeHost) -> Vec<String> {
    host.emitted()
        .iter()
        .map(|e| String::from_utf8_lossy(e.key.as_deref().unwrap_or(b"<null>")).into_owned())
        .collect()
}

/// During a batch emits are buffered and handed over in one emit_batch call
/// when the batch ends; outside a batch each goes to the host at once.
#[test]
fn emits_are_buffered_for_the_batch() {
    let host = FakeHost::new()
        .output("a", "ta")
        .output("b", "tb")
        .policy(Policy::Fail);
    host.run_records(&batch_of(&["x", "y", "z"]), |r: &Record| -> Result<()> {
        streamrt::emit("a", r.key, r.value)?;
        streamrt::emit_with(
            "b",
            r.key,
            None,
            EmitOptions::new().timestamp(r.index() as i64),
        )
    })
    .unwrap();
    assert_eq!(keys(&host), ["k0", "k0", "k1", "k1", "k2", "k2"]);
    let tb: Vec<i64> = host
        .emitted()
        .iter()
        .filter(|e| e.topic == "tb")
        .map(|e| e.timestamp)
        .collect();
    assert_eq!(tb, [0, 1, 2]);
    assert_eq!(host.emit_batches().len(), 1, "one emit_batch call");
    assert!(
        streamrt::flush().is_ok(),
        "nothing to flush outside a batch"
    );
}

/// The buffer is handed over whenever the next entry would not fit, so no
/// emit_batch call exceeds it; the records arrive once each, in order; an
/// entry larger than the buffer goes alone, after what the buffer held.
#[test]
fn the_emit_buffer_is_handed_over_when_full() {
    let host = FakeHost::new().output("out", "t").policy(Policy::Fail);
    let value = vec![b'v'; 1000];
    let big = vec![b'x'; 64 << 10];
    host.run_records(&batch_of(&[""; 20]), |r: &Record| -> Result<()> {
        for j in 0..10 {
            let k = format!("{}.{}", r.index(), j);
            streamrt::emit("out", Some(k.as_bytes()), Some(&value))?;
        }
        if r.index() == 7 {
            let hs = [Header::null(b"h")];
            streamrt::emit_with(
                "out",
                Some(b"big"),
                Some(&big),
                EmitOptions::new().headers(&hs),
            )?;
        }
        Ok(())
    })
    .unwrap();
    let mut want = Vec::new();
    for i in 0..20 {
        for j in 0..10 {
            want.push(format!("{}.{}", i, j));
        }
        if i == 7 {
            want.push("big".to_string());
        }
    }
    assert_eq!(keys(&host), want);
    let emitted = host.emitted();
    let big_one = emitted
        .iter()
        .find(|e| e.key.as_deref() == Some(b"big"))
        .unwrap();
    assert_eq!(
        (big_one.value.as_ref().unwrap().len(), big_one.headers.len()),
        (64 << 10, 1)
    );
    let sizes = host.emit_batches();
    assert!(sizes.iter().all(|&n| n <= 64 << 10), "{:?}", sizes);
    let entry = abi::emit_size(Some(b"0.0"), Some(&value), &[]);
    assert!(
        sizes.len() >= 200 * entry / (64 << 10) && sizes.iter().sum::<usize>() >= 200 * entry,
        "{:?}",
        sizes
    );
}

/// A failed record's emits never reach the host's output, wherever the
/// buffer was handed over: the SDK drops its entries still buffered before
/// record_error, which undoes those handed over before. The other records'
/// emits arrive once, in order.
#[test]
fn a_failed_record_drops_its_buffered_emits() {
    let host = FakeHost::new().output("out", "t").policy(Policy::Skip);
    let value = vec![b'v'; 1000];
    // Records 1 and 3 emit 100 entries of about 1 KB, more than the buffer
    // holds; 1 and 4 fail.
    host.run_records(&batch_of(&[""; 6]), |r: &Record| -> Result<()> {
        let i = r.index();
        for j in 0..1 + 99 * (i % 2) {
            let k = format!("{}.{}", i, j);
            streamrt::emit("out", Some(k.as_bytes()), Some(&value))?;
        }
        if i % 3 == 1 {
            return Err(Error::new("bad"));
        }
        Ok(())
    })
    .unwrap();
    let mut want = Vec::new();
    for i in 0..6usize {
        if i % 3 != 1 {
            for j in 0..1 + 99 * (i % 2) {
                want.push(format!("{}.{}", i, j));
            }
        }
    }
    assert_eq!(keys(&host), want);
    assert_eq!(host.failures().len(), 2);
    assert!(host.emit_batches().len() >= 3, "{:?}", host.emit_batches());
}

/// A batch handler that fails a record after another record's emits cannot
/// have the failed one's entries dropped alone: the SDK hands the buffer
/// over as it is, so the host sees the emits unbuffered would have shown.
#[test]
fn batch_fail_after_another_record_hands_the_buffer_over() {
    #[derive(Default)]
    struct Order(Spy, Vec<String>);
    impl Host for Order {
        fn store_open(&mut self, n: &[u8]) -> i32 {
            self.0.store_open(n)
        }
        fn store_get(&mut self, s: i32, k: Option<&[u8]>, b: &mut [u8]) -> i32 {
            self.0.store_get(s, k, b)
        }
        fn store_put(&mut self, s: i32, r: i32, k: Option<&[u8]>, v: Option<&[u8]>) -> i32 {
            self.0.store_put(s, r, k, v)
        }
        fn store_delete(&mut self, s: i32, r: i32, k: Option<&[u8]>) -> i32 {
            self.0.store_delete(s, r, k)
        }
        fn store_range(&mut self, s: i32, a: Option<&[u8]>, b: Option<&[u8]>) -> i32 {
            self.0.store_range(s, a, b)
        }
        fn range_next(&mut self, i: i32, b: &mut [u8]) -> i32 {
            self.0.range_next(i, b)
        }
        fn range_close(&mut self, i: i32) -> i32 {
            self.0.range_close(i)
        }
        fn output_open(&mut self, n: &[u8]) -> i32 {
            self.0.output_open(n)
        }
        #[allow(clippy::too_many_arguments)]
        fn emit(
            &mut self,
            o: i32,
            r: i32,
            k: Option<&[u8]>,
            v: Option<&[u8]>,
            h: &[u8],
            ts: i64,
        ) -> i32 {
            self.1.push(format!("emit {}", r));
            self.0.emit(o, r, k, v, h, ts)
        }
        fn log(&mut self, l: i32, m: &[u8]) {
            self.0.log(l, m)
        }
        fn record_error(&mut self, r: i32, m: &[u8]) -> i32 {
            self.1.push(format!("error {}", r));
            self.0.record_error(r, m)
        }
    }
    let h = Rc::new(RefCell::new(Order::default()));
    let call = testing::call_batch(
        &h,
        testing::new_generation(),
        &encode(batch_of(&["a", "b", "c"])),
        &mut |b: &Batch| -> Result<()> {
            for r in b.all() {
                streamrt::emit("out", r.key, r.value)?;
                if r.index() == 1 {
                    b.fail(0, "late");
                }
            }
            Ok(())
        },
    );
    assert_eq!(call, Call::Returned(0));
    assert_eq!(h.borrow().1, ["emit 0", "emit 1", "error 0", "emit 2"]);
}

/// A flush the host refuses, which only an SDK bug can cause, fails the
/// batch: the emit that flushed returns the error, and the call ends with
/// record_error(-1) and a non-zero result.
#[test]
fn a_refused_flush_fails_the_batch() {
    #[derive(Default)]
    struct Refuse(Spy);
    impl Host for Refuse {
        fn store_open(&mut self, n: &[u8]) -> i32 {
            self.0.store_open(n)
        }
        fn store_get(&mut self, s: i32, k: Option<&[u8]>, b: &mut [u8]) -> i32 {
            self.0.store_get(s, k, b)
        }
        fn store_put(&mut self, s: i32, r: i32, k: Option<&[u8]>, v: Option<&[u8]>) -> i32 {
            self.0.store_put(s, r, k, v)
        }
        fn store_delete(&mut self, s: i32, r: i32, k: Option<&[u8]>) -> i32 {
            self.0.store_delete(s, r, k)
        }
        fn store_range(&mut self, s: i32, a: Option<&[u8]>, b: Option<&[u8]>) -> i32 {
            self.0.store_range(s, a, b)
        }
        fn range_next(&mut self, i: i32, b: &mut [u8]) -> i32 {
            self.0.range_next(i, b)
        }
        fn range_close(&mut self, i: i32) -> i32 {
            self.0.range_close(i)
        }
        fn output_open(&mut self, n: &[u8]) -> i32 {
            self.0.output_open(n)
        }
        #[allow(clippy::too_many_arguments)]
        fn emit(
            &mut self,
            o: i32,
            r: i32,
            k: Option<&[u8]>,
            v: Option<&[u8]>,
            h: &[u8],
            ts: i64,
        ) -> i32 {
            self.0.emit(o, r, k, v, h, ts)
        }
        fn emit_batch(&mut self, _: &[u8]) -> i32 {
            Code::Invalid.raw()
        }
        fn log(&mut self, l: i32, m: &[u8]) {
            self.0.log(l, m)
        }
        fn record_error(&mut self, r: i32, m: &[u8]) -> i32 {
            self.0.record_error(r, m)
        }
    }
    const TEXT: &str = "streamrt: emit_batch: invalid argument";
    let value = vec![b'v'; 1000];
    for n in [1usize, 100] {
        let h = Rc::new(RefCell::new(Refuse::default()));
        let mut errs = Vec::new();
        let call = testing::call_records(
            &h,
            testing::new_generation(),
            &encode(batch_of(&["a", "b"])),
            &mut |_: &Record| -> Result<()> {
                for _ in 0..n {
                    if let Err(e) = streamrt::emit("out", None, Some(&value)) {
                        errs.push(e.to_string());
                        return Err(e);
                    }
                }
                Ok(())
            },
        );
        assert_eq!(call, Call::Returned(1), "n={}", n);
        let h = h.borrow();
        assert_eq!(h.0.errors.last(), Some(&(-1, TEXT.to_string())), "n={}", n);
        assert!(h.0.emits.is_empty());
        if n > 1 {
            assert_eq!(errs.first().map(|s| s.as_str()), Some(TEXT));
        }
    }
}

/// In a query emits are not buffered: with an output opened by an earlier
/// batch, the record goes to the host at once, which refuses it.
#[test]
fn an_emit_in_a_query_is_refused_at_once() {
    let host = FakeHost::new().output("out", "t");
    host.run_records(&batch_of(&["a"]), |r: &Record| -> Result<()> {
        streamrt::emit("out", r.key, r.value)
    })
    .unwrap();
    let mut code = None;
    let (call, _) = host.query(&QueryRequest::default(), |_: &Query| -> Result<Response> {
        code = streamrt::emit("out", None, None).unwrap_err().code();
        Ok(Response::default())
    });
    assert_eq!(call, Call::Returned(0));
    assert_eq!(code, Some(Code::NotAllowed));
    assert_eq!(host.emitted().len(), 1);
    assert_eq!(host.emit_batches().len(), 1, "no emit_batch in the query");
}

/// The fake host keeps writes and emits as two streams, as the host does:
/// buffered emits reach it after later records' writes, and a failed
/// record is still undone alone, without replaying the batch.
#[test]
fn the_fake_host_undoes_a_failed_record_alone_despite_buffered_emits() {
    let host = FakeHost::new()
        .store("s")
        .output("out", "t")
        .policy(Policy::Skip);
    let mut calls = 0;
    host.run_records(&batch_of(&["a", "bad", "c"]), |r: &Record| -> Result<()> {
        calls += 1;
        Store::new("s").put(r.key.unwrap(), b"1")?;
        streamrt::emit("out", r.key, r.value)?;
        if r.value == Some(b"bad") {
            return Err(Error::new("bad"));
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(calls, 3, "the batch was replayed");
    assert_eq!(keys(&host), ["k0", "k2"]);
    let stored: Vec<Vec<u8>> = host.entries("s").into_iter().map(|(k, _)| k).collect();
    assert_eq!(stored, [b"k0".to_vec(), b"k2".to_vec()]);
}
