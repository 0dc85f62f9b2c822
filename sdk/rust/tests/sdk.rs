//! The SDK's behaviour off wasm, against the testing hosts: failures and
//! panics, attribution, buffer growth, iterator lifetimes, handle caching.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;

use streamrt::abi::{self, Batch as AbiBatch, OwnedRecord};
use streamrt::testing::{self, Call, FakeHost, Host, Policy};
use streamrt::{Batch, Code, EmitOptions, Error, Output, Range, Record, Result, Store};

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
            vec![0, 1, 2, 3],
            "emits are attributed to their records"
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
    assert_eq!(emits, ["-1:before", "0:a", "1:bad", "2:c", "-1:after"]);
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
