//! The Rust stage of the mixed-pipeline example: it counts views per page.
//!
//! Input: topic pages, which the Go stage (../normalize) writes, keyed by
//! the normalised page. State: store page-views, page → views as decimal
//! ASCII. Output: counts (topic page-view-counts), page → the new count.
//!
//! It is a batch handler, to show that side of the SDK: it walks the batch
//! with `Batch::all`, so each record's puts and emits are attributed to it,
//! and fails a record with `Batch::fail` without failing the others.

use streamrt::{Batch, Error, Output, Record, Result, Store};

static VIEWS: Store = Store::new("page-views");
static OUT: Output = Output::new("counts");

/// Counts the views of a batch.
pub fn count_batch(b: &Batch) -> Result<()> {
    for r in b.all() {
        if let Err(e) = count(r) {
            b.fail(r.index(), e);
        }
    }
    Ok(())
}

fn count(r: &Record) -> Result<()> {
    let page = r.key.ok_or("page view without a page (null key)")?;
    let n: u64 = match VIEWS.get(page)? {
        None => 0,
        Some(v) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::new("corrupt count"))?,
    };
    let next = (n + 1).to_string();
    VIEWS.put(page, next.as_bytes())?;
    OUT.emit(Some(page), Some(next.as_bytes()))
}

streamrt::export_stage!(batch: count_batch);

#[cfg(test)]
mod tests {
    use streamrt::abi::OwnedRecord;
    use streamrt::testing::FakeHost;

    #[test]
    fn counts_per_page_and_fails_views_without_a_page() {
        let host = FakeHost::new()
            .store("page-views")
            .output("counts", "page-view-counts");
        let view = |offset: i64, page: Option<&str>| OwnedRecord {
            topic: "pages".into(),
            offset,
            key: page.map(|p| p.as_bytes().to_vec()),
            ..Default::default()
        };
        host.run_batch(
            &[
                view(0, Some("/a")),
                view(1, None),
                view(2, Some("/a")),
                view(3, Some("/b")),
            ],
            super::count_batch,
        )
        .unwrap();
        assert_eq!(host.get("page-views", b"/a"), Some(b"2".to_vec()));
        assert_eq!(host.get("page-views", b"/b"), Some(b"1".to_vec()));
        let failures = host.failures();
        assert_eq!(
            (
                failures.len(),
                failures[0].offset,
                failures[0].message.as_str()
            ),
            (1, 1, "page view without a page (null key)")
        );
    }
}
