//! Runs abi/testdata/conformance/conformance.txt, its batches and its
//! queries, against the conformance guest's interpreter natively, on
//! streamrt::testing::FakeHost. The host's own tests
//! (runtime/internal/engine/conformance_test.go for the batches,
//! runtime/internal/serve/conformance_query_test.go for the queries) run the
//! same transcript against the guest built for wasm, and against the Go
//! twin.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use streamrt::abi::{OwnedHeader, OwnedRecord, Param, QueryRequest};
use streamrt::testing::{Emitted, FakeHost, Policy};

fn transcript_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../abi/testdata/conformance/conformance.txt")
}

#[test]
fn conformance_transcript() {
    let path = transcript_path();
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {}", path.display(), e));
    let t = parse(&text).unwrap_or_else(|e| panic!("{}:{}", path.display(), e));
    assert!(
        t.scenarios.len() >= 5,
        "only {} scenarios",
        t.scenarios.len()
    );
    assert!(
        t.queries.queries.len() >= 10,
        "only {} queries",
        t.queries.queries.len()
    );
    let mut failures = Vec::new();
    for sc in &t.scenarios {
        run_scenario(&t.stage, sc, &mut failures);
    }
    for q in &t.queries.queries {
        run_query(&t.stage, &t.queries, q, &mut failures);
    }
    if !failures.is_empty() {
        panic!(
            "{}: {} mismatches:\n{}",
            path.display(),
            failures.len(),
            failures.join("\n")
        );
    }
}

fn run_scenario(stage: &Stage, sc: &Scenario, failures: &mut Vec<String>) {
    let mut host = FakeHost::new().stage("s");
    for s in &stage.stores {
        host = host.store(s);
    }
    for (name, topic) in &stage.outputs {
        host = host.output(name, topic);
    }
    host = host.policy(match sc.policy.as_str() {
        "skip" => Policy::Skip,
        "fail" => Policy::Fail,
        _ => Policy::DeadLetter(stage.dlq.clone()),
    });
    let mut fail = |line: usize, msg: String| {
        failures.push(format!("scenario {} line {}: {}", sc.name, line, msg))
    };
    for b in &sc.batches {
        let (emits0, failures0, logs0) = (
            host.emitted().len(),
            host.failures().len(),
            host.logs().len(),
        );
        let result = host.run_records(&b.inputs, streamrt_conformance::handle);
        let emitted = host.emitted()[emits0..].to_vec();
        let failed = host.failures()[failures0..].to_vec();
        let logs = host.logs()[logs0..].to_vec();
        let (dead, produced): (Vec<Emitted>, Vec<Emitted>) =
            emitted.into_iter().partition(|e| e.topic == stage.dlq);

        let mut by_topic: HashMap<&str, Vec<&Emitted>> = HashMap::new();
        for e in &produced {
            by_topic.entry(e.topic.as_str()).or_default().push(e);
        }
        let mut want_by_topic: HashMap<&str, Vec<&Expect>> = HashMap::new();
        let (mut want_dead, mut want_skipped) = (Vec::new(), Vec::new());
        let mut stopped = None;
        for x in &b.expects {
            match x {
                Expect::Emit { topic, .. } => {
                    want_by_topic.entry(topic.as_str()).or_default().push(x)
                }
                Expect::Dead { .. } => want_dead.push(x),
                Expect::Skipped { .. } => want_skipped.push(x),
                Expect::Stopped { .. } => stopped = Some(x),
                _ => {}
            }
        }

        if let Some(Expect::Stopped {
            line,
            offset,
            error,
        }) = stopped
        {
            match &result {
                Err(s) if s.offset == *offset && s.reason.contains(error.as_str()) => {}
                other => fail(*line, format!("want the task stopped at offset {} with an error containing {:?}, got {:?}", offset, error, other)),
            }
            return;
        }
        if let Err(s) = &result {
            fail(b.line, format!("the task stopped: {}", s));
            return;
        }

        let mut topics: Vec<&str> = by_topic
            .keys()
            .chain(want_by_topic.keys())
            .copied()
            .collect();
        topics.sort_unstable();
        topics.dedup();
        for topic in topics {
            let got = by_topic.get(topic).cloned().unwrap_or_default();
            let want = want_by_topic.get(topic).cloned().unwrap_or_default();
            for i in 0..got.len().max(want.len()) {
                match (got.get(i), want.get(i)) {
                    (Some(g), Some(w)) => {
                        if let Some(msg) = emit_mismatch(g, w) {
                            fail(w.line(), msg);
                        }
                    }
                    (Some(g), None) => fail(
                        b.line,
                        format!("unexpected record on {}: {}", topic, show_emit(g)),
                    ),
                    (None, Some(w)) => fail(w.line(), format!("record missing on {}", topic)),
                    (None, None) => {}
                }
            }
        }

        for i in 0..dead.len().max(want_dead.len()) {
            match (dead.get(i), want_dead.get(i)) {
                (
                    Some(g),
                    Some(Expect::Dead {
                        line,
                        offset,
                        topic,
                        error,
                        contains,
                        kind,
                    }),
                ) => {
                    let input = b
                        .inputs
                        .iter()
                        .find(|r| r.offset == *offset && &r.topic == topic);
                    let src = g
                        .header("streamrt.source.offset")
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                    let err = g
                        .header("streamrt.error")
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    let gkind = g
                        .header("streamrt.error.kind")
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    let ok_err = if *contains {
                        err.contains(error.as_str())
                    } else {
                        err == *error
                    };
                    let ok_src = src.as_deref() == Some(offset.to_string().as_str())
                        && input.map_or(false, |r| r.key == g.key && r.value == g.value)
                        && g.header("streamrt.source.topic") == Some(topic.as_bytes());
                    if !ok_err || !ok_src || kind.as_ref().map_or(false, |k| *k != gkind) {
                        fail(
                            *line,
                            format!(
                                "dead letter: got offset {:?} error {:?} kind {:?}",
                                src, err, gkind
                            ),
                        );
                    }
                }
                (Some(g), _) => fail(b.line, format!("unexpected dead letter: {}", show_emit(g))),
                (None, Some(w)) => fail(w.line(), "dead letter missing".to_string()),
                (None, None) => {}
            }
        }
        let policy_failures = if sc.policy == "skip" {
            want_skipped.len()
        } else {
            want_dead.len()
        };
        if failed.len() != policy_failures {
            fail(
                b.line,
                format!(
                    "{} records failed, want {}: {:?}",
                    failed.len(),
                    policy_failures,
                    failed
                ),
            );
        }
        for (i, w) in want_skipped.iter().enumerate() {
            if let Expect::Skipped {
                line,
                offset,
                error,
            } = w
            {
                match failed.get(i) {
                    Some(f) if f.offset == *offset && f.message.contains(error.as_str()) => {}
                    other => fail(*line, format!("skipped: got {:?}", other)),
                }
            }
        }

        for x in &b.expects {
            match x {
                Expect::Stored {
                    line,
                    store,
                    key,
                    value,
                } => {
                    let got = host.get(store, key);
                    if got.as_ref() != Some(value) {
                        fail(
                            *line,
                            format!(
                                "store {} key {}: got {}, want {}",
                                store,
                                show(Some(key)),
                                show(got.as_deref()),
                                show(Some(value))
                            ),
                        );
                    }
                }
                Expect::Absent { line, store, key } => {
                    if let Some(v) = host.get(store, key) {
                        fail(
                            *line,
                            format!(
                                "store {} key {}: got {}, want none",
                                store,
                                show(Some(key)),
                                show(Some(&v))
                            ),
                        );
                    }
                }
                Expect::Size { line, store, n } => {
                    let got = host.entries(store).len();
                    if got != *n {
                        fail(
                            *line,
                            format!("store {} holds {} keys, want {}", store, got, n),
                        );
                    }
                }
                Expect::Log { line, level, msg } => {
                    if !logs
                        .iter()
                        .any(|(l, m)| *l == level_code(level) && m == msg)
                    {
                        fail(*line, format!("no log {} {:?} in {:?}", level, msg, logs));
                    }
                }
                _ => {}
            }
        }
    }
}

/// Answers one query on a fake host holding the stage's stores and the
/// query part's tables, loaded with what the request's partition holds: the
/// fake host's stores have no partitions.
fn run_query(stage: &Stage, qs: &Queries, q: &QuerySpec, failures: &mut Vec<String>) {
    let mut host = FakeHost::new().stage("s");
    for s in &stage.stores {
        host = host.store(s);
    }
    for t in &qs.tables {
        host = host.table(t);
    }
    for (name, topic) in &stage.outputs {
        host = host.output(name, topic);
    }
    for l in &qs.loads {
        if qs.tables.contains(&l.store) || l.partition == q.partition {
            host.set(&l.store, &l.key, &l.value);
        }
    }
    let req = QueryRequest {
        partition: q.partition,
        method: &q.method,
        route: &q.route,
        path: &q.path,
        raw_query: &q.raw_query,
        params: q
            .params
            .iter()
            .map(|(name, value)| Param { name, value })
            .collect(),
        body: &q.body,
    };
    let (call, resp) = host.query(&req, streamrt_conformance::query);
    let mut fail = |line: usize, msg: String| {
        failures.push(format!("query at line {}: line {}: {}", q.line, line, msg))
    };
    match (&q.answer, resp) {
        (None, _) => fail(q.line, "no answer line".to_string()),
        (Some(_), None) => fail(q.line, format!("no answer ({:?})", call)),
        (Some(w), Some(got)) => {
            let body_ok = if w.contains {
                contains(&got.body, &w.body)
            } else {
                got.body == w.body
            };
            if got.status != w.status || got.content_type != w.ctype || !body_ok {
                fail(
                    w.line,
                    format!(
                        "answered {} {:?} {}",
                        got.status,
                        got.content_type,
                        show_all(&got.body)
                    ),
                );
            }
        }
    }
    let logs = host.logs();
    for (line, level, msg) in &q.logs {
        if !logs
            .iter()
            .any(|(l, m)| *l == level_code(level) && m == msg)
        {
            fail(*line, format!("no log {} {:?} in {:?}", level, msg, logs));
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn level_code(level: &str) -> i32 {
    match level {
        "debug" => 0,
        "info" => 1,
        "warn" => 2,
        _ => 3,
    }
}

fn emit_mismatch(g: &Emitted, w: &Expect) -> Option<String> {
    if let Expect::Emit {
        key,
        value,
        ts,
        headers,
        ..
    } = w
    {
        let mut bad = g.key != *key || g.value != *value;
        if let Some(ts) = ts {
            bad |= g.timestamp != *ts;
        }
        if let Some(hs) = headers {
            bad |= g.headers != *hs;
        }
        if bad {
            return Some(format!("got {}", show_emit(g)));
        }
    }
    None
}

fn show_emit(e: &Emitted) -> String {
    let mut s = format!(
        "topic={} key={} value={} ts={}",
        e.topic,
        show(e.key.as_deref()),
        show(e.value.as_deref()),
        e.timestamp
    );
    for h in &e.headers {
        let _ = write!(
            s,
            " h.{}={}",
            String::from_utf8_lossy(&h.key),
            show(h.value.as_deref())
        );
    }
    s
}

fn show(b: Option<&[u8]>) -> String {
    match b {
        None => "null".to_string(),
        Some(b) => show_n(b, 200),
    }
}

/// A whole value, such as an answer's body of many lines.
fn show_all(b: &[u8]) -> String {
    show_n(b, b.len())
}

fn show_n(b: &[u8], limit: usize) -> String {
    let mut s = String::from("\"");
    for &c in b.iter().take(limit) {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{:02x}", c);
            }
        }
    }
    if b.len() > limit {
        let _ = write!(s, "...({} bytes)", b.len());
    }
    s.push('"');
    s
}

// ---------------------------------------------------------------------------
// The transcript format (see the header of conformance.txt).

struct Transcript {
    stage: Stage,
    scenarios: Vec<Scenario>,
    queries: Queries,
}

/// The query part.
#[derive(Default)]
struct Queries {
    tables: Vec<String>,
    loads: Vec<Load>,
    queries: Vec<QuerySpec>,
}

struct Load {
    store: String,
    partition: i32,
    key: Vec<u8>,
    value: Vec<u8>,
}

struct QuerySpec {
    line: usize,
    partition: i32,
    method: String,
    route: String,
    path: String,
    raw_query: String,
    params: Vec<(String, String)>,
    body: Vec<u8>,
    answer: Option<Answer>,
    /// (line, level, message)
    logs: Vec<(usize, String, String)>,
}

struct Answer {
    line: usize,
    status: u16,
    ctype: String,
    body: Vec<u8>,
    contains: bool,
}

#[derive(Default)]
struct Stage {
    stores: Vec<String>,
    outputs: Vec<(String, String)>,
    dlq: String,
}

struct Scenario {
    name: String,
    policy: String,
    batches: Vec<BatchSpec>,
}

struct BatchSpec {
    line: usize,
    inputs: Vec<OwnedRecord>,
    expects: Vec<Expect>,
}

enum Expect {
    Emit {
        line: usize,
        topic: String,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        ts: Option<i64>,
        headers: Option<Vec<OwnedHeader>>,
    },
    Dead {
        line: usize,
        offset: i64,
        topic: String,
        error: String,
        contains: bool,
        kind: Option<String>,
    },
    Skipped {
        line: usize,
        offset: i64,
        error: String,
    },
    Stopped {
        line: usize,
        offset: i64,
        error: String,
    },
    Stored {
        line: usize,
        store: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Absent {
        line: usize,
        store: String,
        key: Vec<u8>,
    },
    Size {
        line: usize,
        store: String,
        n: usize,
    },
    Log {
        line: usize,
        level: String,
        msg: String,
    },
}

impl Expect {
    fn line(&self) -> usize {
        match self {
            Expect::Emit { line, .. }
            | Expect::Dead { line, .. }
            | Expect::Skipped { line, .. }
            | Expect::Stopped { line, .. }
            | Expect::Stored { line, .. }
            | Expect::Absent { line, .. }
            | Expect::Size { line, .. }
            | Expect::Log { line, .. } => *line,
        }
    }
}

const BASE_TS: i64 = 1_700_000_000_000;

fn parse(text: &str) -> Result<Transcript, String> {
    let mut t = Transcript {
        stage: Stage::default(),
        scenarios: Vec::new(),
        queries: Queries::default(),
    };
    let mut in_queries = false;
    let mut offsets: HashMap<String, i64> = HashMap::new();
    let mut index = 0i64;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let toks = tokens(trimmed).map_err(|e| format!("{}: {}", line, e))?;
        let err = |e: String| format!("{}: {}", line, e);
        let kv = |from: usize| -> Result<Vec<(String, String)>, String> {
            toks[from..]
                .iter()
                .map(|t| {
                    t.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .ok_or_else(|| format!("want name=value, got {}", t))
                })
                .collect()
        };
        if in_queries {
            parse_query_line(&mut t.queries, &toks, line).map_err(err)?;
            continue;
        }
        match toks[0].as_str() {
            "queries" => {
                in_queries = true;
                for (k, v) in kv(1).map_err(err)? {
                    match k.as_str() {
                        "tables" => t.queries.tables = v.split(',').map(String::from).collect(),
                        _ => return Err(err(format!("unknown queries key {}", k))),
                    }
                }
            }
            "stage" => {
                for (k, v) in kv(1).map_err(err)? {
                    match k.as_str() {
                        "inputs" => {}
                        "stores" => t.stage.stores = v.split(',').map(String::from).collect(),
                        "outputs" => {
                            for o in v.split(',') {
                                let (n, topic) = o.split_once(':').ok_or_else(|| {
                                    err(format!("output {} is not name:topic", o))
                                })?;
                                t.stage.outputs.push((n.to_string(), topic.to_string()));
                            }
                        }
                        "dlq" => t.stage.dlq = v,
                        _ => return Err(err(format!("unknown stage key {}", k))),
                    }
                }
            }
            "scenario" => {
                let mut sc = Scenario {
                    name: toks
                        .get(1)
                        .cloned()
                        .ok_or_else(|| err("scenario needs a name".into()))?,
                    policy: "dead_letter".into(),
                    batches: Vec::new(),
                };
                for (k, v) in kv(2).map_err(err)? {
                    match k.as_str() {
                        "policy" => sc.policy = v,
                        _ => return Err(err(format!("unknown scenario key {}", k))),
                    }
                }
                t.scenarios.push(sc);
                offsets.clear();
                index = 0;
            }
            "batch" => {
                let sc = t
                    .scenarios
                    .last_mut()
                    .ok_or_else(|| err("batch outside a scenario".into()))?;
                sc.batches.push(BatchSpec {
                    line,
                    inputs: Vec::new(),
                    expects: Vec::new(),
                });
            }
            word => {
                let b = t
                    .scenarios
                    .last_mut()
                    .and_then(|s| s.batches.last_mut())
                    .ok_or_else(|| err(format!("{} outside a batch", word)))?;
                match word {
                    "in" => {
                        let mut r = OwnedRecord {
                            topic: "in".into(),
                            timestamp: BASE_TS + index,
                            ..Default::default()
                        };
                        index += 1;
                        for (k, v) in kv(1).map_err(err)? {
                            match k.as_str() {
                                "topic" => r.topic = v,
                                "key" => r.key = value(&v).map_err(err)?,
                                "value" => r.value = value(&v).map_err(err)?,
                                "ts" => {
                                    r.timestamp =
                                        v.parse().map_err(|_| err(format!("bad ts {}", v)))?
                                }
                                h if h.starts_with("h.") => r.headers.push(OwnedHeader {
                                    key: h[2..].as_bytes().to_vec(),
                                    value: value(&v).map_err(err)?,
                                }),
                                _ => return Err(err(format!("unknown in key {}", k))),
                            }
                        }
                        let o = offsets.entry(r.topic.clone()).or_insert(0);
                        r.offset = *o;
                        *o += 1;
                        b.inputs.push(r);
                    }
                    "emit" => {
                        let (mut topic, mut key, mut val, mut ts, mut headers) =
                            (String::new(), None, None, None, None);
                        let (mut has_key, mut has_value) = (false, false);
                        for (k, v) in kv(1).map_err(err)? {
                            match k.as_str() {
                                "topic" => topic = v,
                                "key" => {
                                    key = value(&v).map_err(err)?;
                                    has_key = true;
                                }
                                "value" => {
                                    val = value(&v).map_err(err)?;
                                    has_value = true;
                                }
                                "ts" => {
                                    ts = Some(v.parse().map_err(|_| err(format!("bad ts {}", v)))?)
                                }
                                "headers" if v == "none" => headers = Some(Vec::new()),
                                h if h.starts_with("h.") => {
                                    headers.get_or_insert_with(Vec::new).push(OwnedHeader {
                                        key: h[2..].as_bytes().to_vec(),
                                        value: value(&v).map_err(err)?,
                                    })
                                }
                                _ => return Err(err(format!("unknown emit key {}", k))),
                            }
                        }
                        if topic.is_empty() || !has_key || !has_value {
                            return Err(err("emit needs topic, key and value".into()));
                        }
                        b.expects.push(Expect::Emit {
                            line,
                            topic,
                            key,
                            value: val,
                            ts,
                            headers,
                        });
                    }
                    "dead" | "skipped" | "stopped" => {
                        let (mut offset, mut topic, mut error, mut contains, mut kind) =
                            (None, "in".to_string(), None, false, None);
                        for (k, v) in kv(1).map_err(err)? {
                            match k.as_str() {
                                "offset" => {
                                    offset = Some(
                                        v.parse::<i64>()
                                            .map_err(|_| err(format!("bad offset {}", v)))?,
                                    )
                                }
                                "topic" => topic = v,
                                "error" | "error~" => {
                                    contains = k == "error~";
                                    error = Some(text_value(&v).map_err(err)?);
                                }
                                "kind" => kind = Some(v),
                                _ => return Err(err(format!("unknown {} key {}", word, k))),
                            }
                        }
                        let offset =
                            offset.ok_or_else(|| err(format!("{} needs an offset", word)))?;
                        let error = error.ok_or_else(|| err(format!("{} needs an error", word)))?;
                        b.expects.push(match word {
                            "dead" => Expect::Dead {
                                line,
                                offset,
                                topic,
                                error,
                                contains,
                                kind,
                            },
                            "skipped" => Expect::Skipped {
                                line,
                                offset,
                                error,
                            },
                            _ => Expect::Stopped {
                                line,
                                offset,
                                error,
                            },
                        });
                    }
                    "stored" | "absent" | "size" | "log" => {
                        let arg = |i: usize| {
                            toks.get(i)
                                .cloned()
                                .ok_or_else(|| err(format!("{} needs more arguments", word)))
                        };
                        b.expects.push(match word {
                            "stored" => Expect::Stored {
                                line,
                                store: arg(1)?,
                                key: value(&arg(2)?).map_err(err)?.unwrap_or_default(),
                                value: value(&arg(3)?).map_err(err)?.unwrap_or_default(),
                            },
                            "absent" => Expect::Absent {
                                line,
                                store: arg(1)?,
                                key: value(&arg(2)?).map_err(err)?.unwrap_or_default(),
                            },
                            "size" => Expect::Size {
                                line,
                                store: arg(1)?,
                                n: arg(2)?.parse().map_err(|_| err("bad size".into()))?,
                            },
                            _ => Expect::Log {
                                line,
                                level: arg(1)?,
                                msg: text_value(&arg(2)?).map_err(err)?,
                            },
                        });
                    }
                    _ => return Err(err(format!("unknown directive {}", word))),
                }
            }
        }
    }
    Ok(t)
}

/// Parses a line of the query part.
fn parse_query_line(qs: &mut Queries, toks: &[String], line: usize) -> Result<(), String> {
    let kv = |from: usize| -> Result<Vec<(String, String)>, String> {
        toks[from..]
            .iter()
            .map(|t| {
                t.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| format!("want name=value, got {}", t))
            })
            .collect()
    };
    let word = toks[0].as_str();
    if word == "load" {
        if toks.len() != 5 {
            return Err("load takes 4 arguments".into());
        }
        qs.loads.push(Load {
            store: toks[1].clone(),
            partition: toks[2]
                .parse()
                .map_err(|_| format!("bad partition {}", toks[2]))?,
            key: value(&toks[3])?.unwrap_or_default(),
            value: value(&toks[4])?.unwrap_or_default(),
        });
        return Ok(());
    }
    if word == "query" {
        let mut q = QuerySpec {
            line,
            partition: 3,
            method: "GET".into(),
            route: "/q".into(),
            path: "/q".into(),
            raw_query: String::new(),
            params: Vec::new(),
            body: Vec::new(),
            answer: None,
            logs: Vec::new(),
        };
        let mut has_body = false;
        for (k, v) in kv(1)? {
            match k.as_str() {
                "partition" => {
                    q.partition = v.parse().map_err(|_| format!("bad partition {}", v))?
                }
                "method" => q.method = text_value(&v)?,
                "route" => q.route = text_value(&v)?,
                "path" => q.path = text_value(&v)?,
                "rawquery" => q.raw_query = text_value(&v)?,
                "body" => {
                    q.body = value(&v)?.unwrap_or_default();
                    has_body = true;
                }
                p if p.starts_with("param.") => {
                    q.params.push((p[6..].to_string(), text_value(&v)?))
                }
                _ => return Err(format!("unknown query key {}", k)),
            }
        }
        if !has_body {
            return Err("query needs a body".into());
        }
        qs.queries.push(q);
        return Ok(());
    }
    let q = qs
        .queries
        .last_mut()
        .ok_or_else(|| format!("{} outside a query", word))?;
    match word {
        "answer" => {
            let mut a = Answer {
                line,
                status: 0,
                ctype: String::new(),
                body: Vec::new(),
                contains: false,
            };
            let (mut has_status, mut has_ctype) = (false, false);
            for (k, v) in kv(1)? {
                match k.as_str() {
                    "status" => {
                        a.status = v.parse().map_err(|_| format!("bad status {}", v))?;
                        has_status = true;
                    }
                    "ctype" => {
                        a.ctype = text_value(&v)?;
                        has_ctype = true;
                    }
                    "body" | "body~" => {
                        a.body = value(&v)?.unwrap_or_default();
                        a.contains = k == "body~";
                    }
                    _ => return Err(format!("unknown answer key {}", k)),
                }
            }
            if !has_status || !has_ctype {
                return Err("answer needs a status and a content type".into());
            }
            if q.answer.is_some() {
                return Err("a second answer".into());
            }
            q.answer = Some(a);
        }
        "line" => {
            let a = q.answer.as_mut().ok_or("line before answer")?;
            if toks.len() != 2 {
                return Err("line takes 1 argument".into());
            }
            a.body
                .extend_from_slice(&value(&toks[1])?.unwrap_or_default());
            a.body.push(b'\n');
        }
        "log" => {
            if toks.len() != 3 {
                return Err("log takes 2 arguments".into());
            }
            q.logs.push((line, toks[1].clone(), text_value(&toks[2])?));
        }
        _ => return Err(format!("unknown directive {} in the query part", word)),
    }
    Ok(())
}

/// Splits a line into tokens at spaces outside double quotes.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                cur.push(c);
                loop {
                    match chars.next() {
                        None => return Err("unterminated string".into()),
                        Some('\\') => {
                            cur.push('\\');
                            cur.push(chars.next().ok_or("unterminated string")?);
                        }
                        Some('"') => {
                            cur.push('"');
                            break;
                        }
                        Some(c) => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

/// A value: null, "quoted" (optionally *N), hex:HEX, or a bare word.
fn value(s: &str) -> Result<Option<Vec<u8>>, String> {
    if s == "null" {
        return Ok(None);
    }
    if let Some(h) = s.strip_prefix("hex:") {
        if h.len() % 2 != 0 {
            return Err(format!("bad hex {}", s));
        }
        return (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).map_err(|_| format!("bad hex {}", s)))
            .collect::<Result<Vec<u8>, String>>()
            .map(Some);
    }
    if !s.starts_with('"') {
        return Ok(Some(s.as_bytes().to_vec()));
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 1;
    loop {
        match b.get(i) {
            None => return Err(format!("unterminated string {}", s)),
            Some(b'"') => break,
            Some(b'\\') => {
                match b.get(i + 1) {
                    Some(b'\\') => out.push(b'\\'),
                    Some(b'"') => out.push(b'"'),
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'x') => {
                        let h = s
                            .get(i + 2..i + 4)
                            .ok_or_else(|| format!("bad escape in {}", s))?;
                        out.push(
                            u8::from_str_radix(h, 16)
                                .map_err(|_| format!("bad escape in {}", s))?,
                        );
                        i += 2;
                    }
                    _ => return Err(format!("bad escape in {}", s)),
                }
                i += 2;
            }
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
    let rest = &s[i + 1..];
    if rest.is_empty() {
        return Ok(Some(out));
    }
    let n: usize = rest
        .strip_prefix('*')
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("bad value {}", s))?;
    Ok(Some(out.repeat(n)))
}

fn text_value(s: &str) -> Result<String, String> {
    let b = value(s)?.unwrap_or_default();
    String::from_utf8(b).map_err(|_| format!("{} is not UTF-8", s))
}

#[test]
fn values_parse() {
    assert_eq!(value("null").unwrap(), None);
    assert_eq!(value("\"\"").unwrap(), Some(vec![]));
    assert_eq!(
        value("\"a\\\"b\\x00\\xff\"").unwrap(),
        Some(b"a\"b\x00\xff".to_vec())
    );
    assert_eq!(value("\"ab\"*3").unwrap(), Some(b"ababab".to_vec()));
    assert_eq!(value("hex:01ff").unwrap(), Some(vec![1, 0xff]));
    assert_eq!(value("k1").unwrap(), Some(b"k1".to_vec()));
    assert_eq!(
        tokens("in key=a value=\"x y; z\" h.t=\"\"").unwrap(),
        vec!["in", "key=a", "value=\"x y; z\"", "h.t=\"\""]
    );
}
