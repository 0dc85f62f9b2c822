//! A test guest: counts records per key in store "counts" and serves query
//! routes over the counts. The Rust twin of the Go test guest
//! runtime/internal/wasm/testdata/guests/queries:
//!
//! ```text
//! /count/{key}  {"key":..,"count":..,"partition":..}, or 404
//! /keys/{part}  the keys of the routed partition, one per line
//! /boom         panics (the SDK answers 500, then the instance traps)
//! /fail         returns an error (the SDK answers 500)
//! /loop         never returns (the host's deadline stops it)
//! /echo         the request: method, path, query string and body
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

use streamrt::{Error, Output, Query, Record, Response, Result, Store};

static COUNTS: Store = Store::new("counts");
static OUT: Output = Output::new("out");
static SPIN: AtomicU64 = AtomicU64::new(0);

fn count(r: &Record) -> Result<()> {
    let key = r.key.ok_or("null key")?;
    let n = match COUNTS.get(key)? {
        Some(v) => parse(&v)?,
        None => 0,
    };
    let next = (n + 1).to_string();
    COUNTS.put(key, next.as_bytes())?;
    OUT.emit(Some(key), Some(next.as_bytes()))
}

fn parse(v: &[u8]) -> Result<u64> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::new("a count is not a number"))
}

fn serve(q: &Query) -> Result<Response> {
    match q.route {
        "/count/{key}" => {
            let key = q.param("key").unwrap_or_default();
            let n = match COUNTS.get(key.as_bytes())? {
                Some(v) => parse(&v)?,
                None => return Ok(Response::error(404, format_args!("no count for {}", key))),
            };
            if COUNTS.put(key.as_bytes(), b"0").is_ok() {
                return Err(Error::new("a query could write"));
            }
            Ok(Response::json(format!(
                r#"{{"key":"{}","count":{},"partition":{}}}"#,
                key, n, q.partition
            )))
        }
        "/keys/{part}" => {
            let mut out = Vec::new();
            let mut it = COUNTS.range(None, None)?;
            while let Some((k, _)) = it.next_entry()? {
                out.extend_from_slice(k);
                out.push(b'\n');
            }
            Ok(Response::new(200, "text/plain", out))
        }
        "/boom" => panic!("boom at {}", q.path),
        "/fail" => Err(Error::new(format!("no answer for {}", q.path))),
        "/loop" => loop {
            SPIN.fetch_add(1, Ordering::Relaxed);
        },
        _ => {
            let pairs: Vec<String> = q
                .query_pairs()
                .into_iter()
                .map(|(n, v)| format!("{}={}", n, v))
                .collect();
            Ok(Response::text(format!(
                "{} {}?{} {}",
                q.method,
                q.path,
                pairs.join("&"),
                String::from_utf8_lossy(q.body)
            )))
        }
    }
}

streamrt::export_stage!(record: count, query: serve);
