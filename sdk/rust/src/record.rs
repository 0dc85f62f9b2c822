use std::fmt;

use crate::abi::{Header, Headers, RawRecord};
use crate::guest::{self, INST};

/// One input record.
///
/// Its key, value and headers borrow the batch the host wrote into guest
/// memory: they live as long as the handler call (the `'a`), and the borrow
/// checker keeps you from holding on to them longer. Copy what you keep
/// (`to_vec`).
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// The input topic the record came from.
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// `None` when the key is null; `Some(&[])` when it is empty.
    pub key: Option<&'a [u8]>,
    /// `None` when the value is null (a tombstone).
    pub value: Option<&'a [u8]>,
    headers: Headers<'a>,
    index: usize,
}

impl<'a> Record<'a> {
    pub(crate) fn from_raw(r: RawRecord<'a>, index: usize) -> Record<'a> {
        Record {
            topic: r.topic,
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
            index,
        }
    }

    /// The record's headers, in order. Iterating decodes them from the
    /// batch and allocates nothing.
    pub fn headers(&self) -> Headers<'a> {
        self.headers
    }

    /// The first header named `key`.
    pub fn header(&self, key: &[u8]) -> Option<Header<'a>> {
        self.headers.into_iter().find(|h| h.key == key)
    }

    /// The record's position in its batch, the index [`Batch::fail`] takes.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl<'a> fmt::Debug for Record<'a> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("index", &self.index)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("key", &self.key)
            .field("value", &self.value)
            .field("headers", &self.headers)
            .finish()
    }
}

/// The batch a batch handler receives. It and its records live as long as
/// the handler call.
pub struct Batch<'a> {
    records: Vec<Record<'a>>,
    stream_time: i64,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(records: Vec<Record<'a>>, stream_time: i64) -> Batch<'a> {
        Batch {
            records,
            stream_time,
        }
    }

    pub(crate) fn into_records(self) -> Vec<Record<'a>> {
        self.records
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the batch holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The stream time: the highest record timestamp the task has seen,
    /// this batch included, or -1 when unknown.
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// Record `i`. Reading a record does not attribute effects to it: only
    /// [`Batch::all`] does.
    pub fn record(&self, i: usize) -> &Record<'a> {
        &self.records[i]
    }

    /// The records as a slice, without attribution (see [`Batch::all`]).
    pub fn records(&self) -> &[Record<'a>] {
        &self.records
    }

    /// The records in order, attributing effects made in the loop body
    /// (emits, puts, deletes) to the record at hand, so that the host drops
    /// them if that record fails. Effects made outside such a loop belong to
    /// the batch as a whole. When the iterator ends or is dropped, the
    /// attribution from before it comes back (so loops nest).
    ///
    /// ```ignore
    /// for r in batch.all() {
    ///     if let Err(e) = handle(r) {
    ///         batch.fail(r.index(), e);
    ///     }
    /// }
    /// ```
    pub fn all(&self) -> All<'_, 'a> {
        All {
            records: self.records.iter(),
            next: 0,
            prev: guest::current(),
        }
    }

    /// Reports that record `i` failed with `err`: the host drops the
    /// record's effects and applies the stage's error policy to it, and the
    /// rest of the batch goes on; the record's emits that the SDK still
    /// holds in its emit buffer are dropped. Call it when done with the record, before
    /// its successors' effects: a failure reported later makes the host
    /// treat the batch as failed and run its records again one per call
    /// (which is correct, only slower).
    ///
    /// # Panics
    ///
    /// When `i` is not a record of the batch.
    pub fn fail(&self, i: usize, err: impl fmt::Display) {
        assert!(
            i < self.records.len(),
            "streamrt: Batch::fail: record index out of range"
        );
        guest::fail_batch_record(i as i32, &err.to_string());
    }
}

/// The iterator of [`Batch::all`].
pub struct All<'b, 'a> {
    records: std::slice::Iter<'b, Record<'a>>,
    next: usize,
    prev: i32,
}

impl<'b, 'a> Iterator for All<'b, 'a> {
    type Item = &'b Record<'a>;

    fn next(&mut self) -> Option<&'b Record<'a>> {
        match self.records.next() {
            Some(r) => {
                INST.with(|i| i.current.set(self.next as i32));
                self.next += 1;
                Some(r)
            }
            None => {
                INST.with(|i| i.current.set(self.prev));
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.records.size_hint()
    }
}

impl<'b, 'a> Drop for All<'b, 'a> {
    fn drop(&mut self) {
        let prev = self.prev;
        let _ = INST.try_with(|i| i.current.set(prev));
    }
}

/// The stream time of the batch being processed: the highest record
/// timestamp the task has seen, in milliseconds since the Unix epoch, or -1
/// when unknown. It is the guest's clock; there is no other.
pub fn stream_time() -> i64 {
    INST.with(|i| i.stream_time.get())
}
