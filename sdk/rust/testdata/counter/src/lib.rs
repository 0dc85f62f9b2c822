//! A test guest: counts records per key in store "counts" (decimal ASCII)
//! and emits key → new count to output "out"; a record with a null key
//! fails. The Rust twin of the Go test guest
//! runtime/internal/wasm/testdata/guests/counter, for the host's benchmarks.

use std::cell::RefCell;

use streamrt::{Error, Output, Record, Result, Store};

static COUNTS: Store = Store::new("counts");
static OUT: Output = Output::new("out");

thread_local! {
    // Reused buffers: Get copies into the first, the new count is
    // formatted into the second; Put and Emit copy them.
    static BUFS: RefCell<(Vec<u8>, Vec<u8>)> =
        const { RefCell::new((Vec::new(), Vec::new())) };
}

fn count(r: &Record) -> Result<()> {
    let key = r.key.ok_or("null key")?;
    BUFS.with(|b| {
        let (val, num) = &mut *b.borrow_mut();
        let n = if COUNTS.get_into(key, val)? {
            parse(val).ok_or_else(|| {
                Error::new(format!(
                    "count of key {:?}: not a number",
                    String::from_utf8_lossy(key)
                ))
            })?
        } else {
            0
        };
        num.clear();
        append_u64(num, n + 1);
        COUNTS.put(key, num)?;
        OUT.emit(Some(key), Some(num))
    })
}

fn parse(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u64, |n, &c| {
        if c.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        } else {
            None
        }
    })
}

fn append_u64(dst: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    dst.extend_from_slice(&tmp[i..]);
}

streamrt::export_stage!(record: count);
