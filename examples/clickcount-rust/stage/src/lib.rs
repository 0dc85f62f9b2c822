//! The clickcount stage in Rust: it counts clicks per page, as
//! examples/clickcount/guest does in Go.
//!
//! Input: topic clicks, keyed by page. State: store click-counts, page →
//! count as decimal ASCII. Output: counts (the app's configuration maps it to
//! topic page-counts), page → the new count. A click with a null key fails,
//! which hands it to the stage's error policy.
//!
//! Build (streamrt does it when a stage's module is this directory):
//!
//! ```text
//! PATH=/usr/bin:$PATH cargo build --release --target wasm32-unknown-unknown
//! ```

use streamrt::{Error, Output, Record, Result, Store};

static COUNTS: Store = Store::new("click-counts");
static OUT: Output = Output::new("counts");

/// Counts one click.
pub fn count(r: &Record) -> Result<()> {
    let page = r.key.ok_or("click without a page (null key)")?;
    let n = match COUNTS.get(page)? {
        None => 0,
        Some(v) => parse(&v).ok_or_else(|| {
            Error::new(format!(
                "count of page {:?}: {:?} is not a number",
                String::from_utf8_lossy(page),
                String::from_utf8_lossy(&v)
            ))
        })?,
    };
    let next = (n + 1).to_string();
    COUNTS.put(page, next.as_bytes())?;
    OUT.emit(Some(page), Some(next.as_bytes()))
}

streamrt::export_stage!(record: count);

fn parse(b: &[u8]) -> Option<u64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

// The stage's unit tests run natively (`cargo test`), on the SDK's fake
// host, which undoes failed records and applies the error policy as the
// streamrt host does.
#[cfg(test)]
mod tests {
    use super::count;
    use streamrt::abi::OwnedRecord;
    use streamrt::testing::{FakeHost, Policy};

    fn click(offset: i64, page: Option<&str>) -> OwnedRecord {
        OwnedRecord {
            topic: "clicks".into(),
            offset,
            key: page.map(|p| p.as_bytes().to_vec()),
            value: Some(b"x".to_vec()),
            ..Default::default()
        }
    }

    #[test]
    fn counts_clicks_and_dead_letters_those_without_a_page() {
        let host = FakeHost::new()
            .store("click-counts")
            .output("counts", "page-counts")
            .policy(Policy::DeadLetter("dlq".into()));
        host.run_records(
            &[
                click(0, Some("home")),
                click(1, Some("docs")),
                click(2, None),
                click(3, Some("home")),
            ],
            count,
        )
        .unwrap();
        assert_eq!(host.get("click-counts", b"home"), Some(b"2".to_vec()));
        assert_eq!(host.get("click-counts", b"docs"), Some(b"1".to_vec()));
        let out: Vec<String> = host
            .emitted()
            .iter()
            .map(|e| {
                format!(
                    "{}: {}={}",
                    e.topic,
                    String::from_utf8_lossy(e.key.as_deref().unwrap_or(b"null")),
                    String::from_utf8_lossy(e.value.as_deref().unwrap_or(b""))
                )
            })
            .collect();
        assert_eq!(
            out,
            [
                "page-counts: home=1",
                "page-counts: docs=1",
                "page-counts: home=2",
                "dlq: null=x"
            ]
        );
        assert_eq!(
            host.failures()[0].message,
            "click without a page (null key)"
        );
    }

    #[test]
    fn a_corrupt_count_fails_its_record_only() {
        let host = FakeHost::new()
            .store("click-counts")
            .output("counts", "page-counts")
            .policy(Policy::Skip);
        host.set("click-counts", b"home", b"many");
        host.run_records(&[click(0, Some("home")), click(1, Some("docs"))], count)
            .unwrap();
        assert_eq!(
            host.failures()[0].message,
            "count of page \"home\": \"many\" is not a number"
        );
        assert_eq!(host.get("click-counts", b"docs"), Some(b"1".to_vec()));
    }
}
