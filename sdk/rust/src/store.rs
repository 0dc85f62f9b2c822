use std::borrow::Cow;
use std::fmt;

use crate::abi::{self, Code};
use crate::error::{Error, Result};
use crate::guest::{Handle, INST};
use crate::sys;

/// A handle to one of the stage's key/value stores, as the app's
/// configuration declares them. Reads see the batch's own earlier writes;
/// writes become durable when the host commits the batch.
///
/// The host is asked for the store on first use, and the answer is kept, so
/// a stage declares its stores as statics:
///
/// ```ignore
/// static COUNTS: Store = Store::new("click-counts");
/// ```
///
/// When the stage does not declare the store, every method fails with an
/// error whose [`Error::code`] is [`Code::UnknownStore`]. Store methods work
/// only while a handler runs.
///
/// A table (a store the host materialises from a topic, which the stage
/// declares under `tables`) is read through a `Store` of its name too; joins
/// are lookups in tables. Its `put` and `delete` fail with
/// [`Code::ReadOnly`].
pub struct Store {
    name: Cow<'static, str>,
    handle: Handle,
}

/// The first size of `Store::get`'s buffer; values that do not fit grow it.
const SCRATCH_MIN: usize = 4 << 10;
/// Growth beyond this size allocates only what one value needs.
const SCRATCH_CHUNK: usize = 1 << 20;
/// The first size of an iterator's buffer.
const RANGE_BUF: usize = 4 << 10;

impl Store {
    /// The store named `name`, for a `static`.
    pub const fn new(name: &'static str) -> Store {
        Store {
            name: Cow::Borrowed(name),
            handle: Handle::new(),
        }
    }

    /// The store named `name`, when the name is known only at run time.
    pub fn named(name: impl Into<String>) -> Store {
        Store {
            name: Cow::Owned(name.into()),
            handle: Handle::new(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn open(&self) -> Result<i32> {
        let rc = self.handle.get(Code::UnknownStore.raw(), || {
            let (p, n) = sys::arg(self.name.as_bytes());
            unsafe { sys::store_open(p, n) }
        });
        if rc < 0 {
            return Err(Error::host("store_open", &self.name, rc));
        }
        Ok(rc)
    }

    /// The value stored under `key`, or `None`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let h = self.open()?;
        INST.with(|inst| {
            let mut buf = inst.scratch.borrow_mut();
            Ok(self.fetch(h, key, &mut buf)?.map(|n| buf[..n].to_vec()))
        })
    }

    /// Copies the value stored under `key` into `out`, replacing its
    /// contents, and reports whether there was one. With `out` reused from
    /// call to call, reading allocates nothing once `out` is large enough.
    pub fn get_into(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        let h = self.open()?;
        INST.with(|inst| {
            let mut buf = inst.scratch.borrow_mut();
            match self.fetch(h, key, &mut buf)? {
                Some(n) => {
                    out.extend_from_slice(&buf[..n]);
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Whether a value is stored under `key`, without copying it.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        let h = self.open()?;
        let (kp, kl) = sys::arg(key);
        let n = unsafe { sys::store_get(h, kp, kl, std::ptr::null_mut(), 0) };
        match Code::from_result(n) {
            None => Ok(true),
            Some(Code::NotFound) => Ok(false),
            Some(_) => Err(Error::host("store_get", &self.name, n)),
        }
    }

    /// Reads the value under key into buf (whose length is its usable
    /// size), growing buf when the host says the value does not fit, and
    /// returns the value's length.
    fn fetch(&self, h: i32, key: &[u8], buf: &mut Vec<u8>) -> Result<Option<usize>> {
        if buf.is_empty() {
            buf.resize(SCRATCH_MIN, 0);
        }
        let (kp, kl) = sys::arg(key);
        let mut n = unsafe { sys::store_get(h, kp, kl, buf.as_mut_ptr(), buf.len() as i32) };
        if n >= 0 && n as usize > buf.len() {
            let size = (n as usize).max((2 * buf.len()).min(SCRATCH_CHUNK));
            *buf = vec![0; size];
            n = unsafe { sys::store_get(h, kp, kl, buf.as_mut_ptr(), buf.len() as i32) };
            if n >= 0 && n as usize > buf.len() {
                return Err(Error::host("store_get", &self.name, Code::Internal.raw()));
            }
        }
        match Code::from_result(n) {
            None => Ok(Some(n as usize)),
            Some(Code::NotFound) => Ok(None),
            Some(_) => Err(Error::host("store_get", &self.name, n)),
        }
    }

    /// Stores `value` under `key`, attributed to the record being handled
    /// (see [`crate::export_stage!`] and [`crate::Batch::all`]). The host
    /// copies both before it returns.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let h = self.open()?;
        let (kp, kl) = sys::arg(key);
        let (vp, vl) = sys::arg(value);
        let rc = unsafe { sys::store_put(h, crate::guest::current(), kp, kl, vp, vl) };
        if rc < 0 {
            return Err(Error::host("store_put", &self.name, rc));
        }
        Ok(())
    }

    /// Removes `key`, attributed to the record being handled. Removing an
    /// absent key is not an error.
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        let h = self.open()?;
        let (kp, kl) = sys::arg(key);
        let rc = unsafe { sys::store_delete(h, crate::guest::current(), kp, kl) };
        if rc < 0 {
            return Err(Error::host("store_delete", &self.name, rc));
        }
        Ok(())
    }

    /// The entries with keys in `[start, end)`, in byte order; `None` is
    /// unbounded, and an empty `end` makes an empty range. The iterator sees
    /// the store as it was when `range` was called, and is valid only until
    /// the handler returns.
    pub fn range(&self, start: Option<&[u8]>, end: Option<&[u8]>) -> Result<Range<'_>> {
        let h = self.open()?;
        let (sp, sl) = sys::nullable(start);
        let (ep, el) = sys::nullable(end);
        let rc = unsafe { sys::store_range(h, sp, sl, ep, el) };
        if rc < 0 {
            return Err(Error::host("store_range", &self.name, rc));
        }
        let buf = INST
            .with(|i| i.range_bufs.borrow_mut().pop())
            .unwrap_or_else(|| vec![0; RANGE_BUF]);
        Ok(Range {
            store: self,
            handle: rc,
            open: true,
            call: INST.with(|i| i.call.get()),
            buf,
            filled: 0,
            pos: 0,
        })
    }

    /// The entries whose keys start with `p`, in byte order; an empty `p`
    /// walks the whole store.
    pub fn prefix(&self, p: &[u8]) -> Result<Range<'_>> {
        if p.is_empty() {
            return self.range(None, None);
        }
        match prefix_end(p) {
            Some(end) => self.range(Some(p), Some(&end)),
            // p is all 0xff bytes: no key after the prefix exists.
            None => self.range(Some(p), None),
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.name).finish()
    }
}

/// The smallest key greater than every key that starts with p, or `None`
/// when there is none.
fn prefix_end(p: &[u8]) -> Option<Vec<u8>> {
    let i = p.iter().rposition(|&b| b != 0xff)?;
    let mut end = p[..=i].to_vec();
    end[i] += 1;
    Some(end)
}

/// An iterator over a range of a store, from [`Store::range`] or
/// [`Store::prefix`]. It fetches many entries per host call into a buffer
/// that it reuses, and grows it when an entry does not fit.
///
/// [`Range::next_entry`] lends each entry without copying:
///
/// ```ignore
/// let mut it = store.prefix(b"user/")?;
/// while let Some((key, value)) = it.next_entry()? {
///     use_entry(key, value);
/// }
/// ```
///
/// As an [`Iterator`] it yields owned copies. Dropping it closes it; the
/// host closes iterators left open when the batch call ends, and using one
/// after that is an error ([`Error::is_iterator_closed`]).
pub struct Range<'s> {
    store: &'s Store,
    handle: i32,
    /// The host iterator is open.
    open: bool,
    /// The `streamrt_process` call that opened it.
    call: u32,
    /// Entries as range_next wrote them; its length is its usable size.
    buf: Vec<u8>,
    filled: usize,
    pos: usize,
}

impl<'s> Range<'s> {
    /// The next entry, borrowed from the iterator's buffer until the next
    /// call; `None` at the end of the range. After an error it returns
    /// `None`.
    pub fn next_entry(&mut self) -> Result<Option<(&[u8], &[u8])>> {
        while self.pos == self.filled {
            if !self.open {
                return Ok(None);
            }
            if INST.with(|i| i.call.get()) != self.call {
                self.open = false;
                return Err(Error::iterator_closed());
            }
            let n = unsafe {
                sys::range_next(self.handle, self.buf.as_mut_ptr(), self.buf.len() as i32)
            };
            if n < 0 {
                self.close_host();
                return Err(Error::host("range_next", self.store.name(), n));
            }
            let n = n as usize;
            if n == 0 {
                // Exhausted: release the host's iterator early.
                self.close_host();
                return Ok(None);
            }
            if n > self.buf.len() {
                let size = n.max(2 * self.buf.len());
                self.buf = vec![0; size];
                continue;
            }
            self.filled = n;
            self.pos = 0;
        }
        let parsed =
            abi::next_entry(&self.buf[self.pos..self.filled]).map(|(k, v, _)| (k.len(), v.len()));
        match parsed {
            Ok((kl, vl)) => {
                let p = self.pos;
                self.pos = p + 8 + kl + vl;
                let b = &self.buf;
                Ok(Some((
                    &b[p + 4..p + 4 + kl],
                    &b[p + 8 + kl..p + 8 + kl + vl],
                )))
            }
            Err(e) => {
                self.pos = self.filled;
                self.close_host();
                Err(Error::new(format!(
                    "streamrt: store \"{}\": range_next wrote a malformed entry: {}",
                    self.store.name(),
                    e
                )))
            }
        }
    }

    /// Closes the iterator, returning the host's error, if any. Dropping it
    /// does the same and ignores the error.
    pub fn close(mut self) -> Result<()> {
        self.pos = self.filled;
        if !self.open || INST.with(|i| i.call.get()) != self.call {
            self.open = false;
            return Ok(());
        }
        self.open = false;
        let rc = unsafe { sys::range_close(self.handle) };
        if rc < 0 {
            return Err(Error::host("range_close", self.store.name(), rc));
        }
        Ok(())
    }

    fn close_host(&mut self) {
        if self.open {
            self.open = false;
            if INST.with(|i| i.call.get()) == self.call {
                unsafe {
                    sys::range_close(self.handle);
                }
            }
        }
    }
}

impl<'s> Iterator for Range<'s> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_entry() {
            Ok(Some((k, v))) => Some(Ok((k.to_vec(), v.to_vec()))),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl<'s> Drop for Range<'s> {
    fn drop(&mut self) {
        self.close_host();
        let buf = std::mem::take(&mut self.buf);
        let _ = INST.try_with(|i| {
            let mut bufs = i.range_bufs.borrow_mut();
            if bufs.len() < 4 {
                bufs.push(buf);
            }
        });
    }
}

impl<'s> fmt::Debug for Range<'s> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Range")
            .field("store", &self.store.name())
            .field("open", &self.open)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b"\x00"), Some(b"\x01".to_vec()));
    }
}
